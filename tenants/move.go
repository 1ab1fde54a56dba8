package tenants

import (
	"context"
	"errors"
	"time"
)

// MoveOptions controls Catalog.Move.
type MoveOptions struct {
	// To names the configured database the tenant moves to.
	To string
	// DropSource drops the source schema after the switch instead of
	// keeping it under an archive name.
	DropSource bool
}

// MovedTable is one table a move copied and verified.
type MovedTable struct {
	Table    string `json:"table"`
	Rows     int64  `json:"rows"`
	Checksum string `json:"checksum"`
}

// MoveReport says what a move did.
type MoveReport struct {
	Tenant string       `json:"tenant"`
	From   string       `json:"from"`
	To     string       `json:"to"`
	Tables []MovedTable `json:"tables"`
	Rows   int64        `json:"rows"`
	// Copy is the time of the bulk copy, during which reads and writes
	// went on; WritePause the time writes were refused (catch-up,
	// verification and switch).
	Copy       time.Duration `json:"-"`
	WritePause time.Duration `json:"-"`
	CopyMS     int64         `json:"copy_ms"`
	PauseMS    int64         `json:"write_pause_ms"`
	// ArchivedAs is the source schema's archive name; empty when dropped.
	ArchivedAs string `json:"archived_as,omitempty"`
}

// Move moves a tenant's schema to another database while it is served.
// (Being built: issue 11.)
func (c *Catalog) Move(ctx context.Context, name string, opts MoveOptions) (MoveReport, error) {
	return MoveReport{Tenant: name, To: opts.To}, errors.New("move: not implemented yet")
}
