package database

import (
	"context"
	"database/sql/driver"

	"github.com/jackc/pgx/v5/stdlib"
)

// releasingConnector makes every connection of one group tell its Router
// when it comes back to the group's pool, so that the Router can hand it
// to the first caller queued for it (Router.wait). database/sql has no
// hook of its own for that; it does ask a connection whether it is still
// valid (driver.Validator) each time one is put back, and that is the
// hook used.
type releasingConnector struct {
	driver.Connector
	back func()
}

func (c releasingConnector) Connect(ctx context.Context) (driver.Conn, error) {
	dc, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	sc, ok := dc.(*stdlib.Conn)
	if !ok {
		return dc, nil
	}
	return &releasingConn{pgxConn: sc, back: c.back}, nil
}

// pgxConn names the embedded connection so that its Conn method (the
// *pgx.Conn, which tenants' moves use through sql.Conn.Raw) is promoted.
type pgxConn = stdlib.Conn

// releasingConn is pgx's database/sql connection, every method of which it
// keeps, plus the two moments its group's pool gets it back.
type releasingConn struct {
	*pgxConn
	back func()
}

// IsValid is called by database/sql as the connection is put back into
// its pool, after every statement or transaction; a closed connection is
// not put back.
func (c *releasingConn) IsValid() bool {
	c.back()
	return !c.Conn().IsClosed()
}

// Close is called when the pool drops the connection (broken, expired);
// the group may then open another, so a queued caller is told too.
func (c *releasingConn) Close() error {
	err := c.pgxConn.Close()
	c.back()
	return err
}

var _ driver.Validator = (*releasingConn)(nil)
