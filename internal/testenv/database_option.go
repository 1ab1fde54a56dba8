package testenv

import "tenantry/config"

// WithDatabase makes Start serve from db (a Cluster's, say) instead of a
// fresh database on the shared server, with the driver's default
// strategy.
func WithDatabase(db config.Database) Option {
	return func(c *config.Config) {
		c.Database = db
		c.Tenancy.Strategy = config.DefaultStrategy(db.Driver)
	}
}
