package controlplane

import (
	"context"
	"fmt"

	"github.com/tollgate/tollgate/internal/admin"
	"github.com/tollgate/tollgate/internal/store"
)

// adminAPI is the admin REST API over the store.
type adminAPI = admin.Server

// openStore opens the database, loads what it holds into the caches and
// builds the admin API over it.
func openStore(ctx context.Context, o Options, cs *caches, m *metrics) (*storeSource, *adminAPI, error) {
	cfg := o.Config.Source.Store
	st, err := store.Open(ctx, store.Options{SQLite: cfg.SQLite, Postgres: cfg.Postgres, Log: o.Log, Now: o.Now, PollInterval: o.PollInterval})
	if err != nil {
		return nil, nil, err
	}
	src := &storeSource{st: st, caches: cs, metrics: m, log: o.Log, now: o.Now, baseDir: o.Config.BaseDir}
	if err := src.load(ctx); err != nil {
		st.Close()
		return nil, nil, err
	}
	auth, err := admin.NewAuthenticator(ctx, o.Config.Auth, o.Log)
	if err != nil {
		st.Close()
		return nil, nil, fmt.Errorf("admin API: %w", err)
	}
	return src, admin.New(admin.Options{Store: st, Auth: auth, Log: o.Log, Now: o.Now, BaseDir: o.Config.BaseDir}), nil
}
