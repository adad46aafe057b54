package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/testpg"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testpg.StopShared()
	os.Exit(code)
}

// backends opens a fresh store of each kind.
func backends(t *testing.T) map[string]func(t *testing.T) *Store {
	return map[string]func(t *testing.T) *Store{
		"sqlite": func(t *testing.T) *Store {
			return open(t, Options{SQLite: filepath.Join(t.TempDir(), "tollgate.db")})
		},
		"postgres": func(t *testing.T) *Store {
			return open(t, Options{Postgres: testpg.Database(t)})
		},
	}
}

func open(t *testing.T, o Options) *Store {
	t.Helper()
	o.PollInterval = time.Hour // tests wake watchers by writing
	s, err := Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func create(t *testing.T, s *Store, r Record) Record {
	t.Helper()
	var out Record
	if _, err := s.Write(context.Background(), func(tx *Tx) error {
		var err error
		out, err = tx.Create(r)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestRecords(t *testing.T) {
	for name, newStore := range backends(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			s := newStore(t)
			a := create(t, s, Record{Kind: KindApplication, ID: "mobile", Owner: "alice", Body: []byte(`{"spec":{}}`)})
			if a.Version != 1 || a.Revision != 1 {
				t.Fatalf("first record: version %d revision %d, want 1 and 1", a.Version, a.Revision)
			}
			_, err := s.Write(ctx, func(tx *Tx) error {
				_, err := tx.Create(Record{Kind: KindApplication, ID: "mobile", Body: []byte(`{}`)})
				return err
			})
			if !errors.Is(err, ErrExists) {
				t.Fatalf("second create: %v, want ErrExists", err)
			}

			// An update from a stale version loses.
			stale := a
			if _, err := s.Write(ctx, func(tx *Tx) error { a.State = "x"; var err error; a, err = tx.Update(a); return err }); err != nil {
				t.Fatal(err)
			}
			_, err = s.Write(ctx, func(tx *Tx) error { _, err := tx.Update(stale); return err })
			if !errors.Is(err, ErrVersion) {
				t.Fatalf("stale update: %v, want ErrVersion", err)
			}
			got, err := s.Get(ctx, KindApplication, "mobile")
			if err != nil || got.Version != 2 || got.State != "x" || got.Owner != "alice" {
				t.Fatalf("after update: %+v %v", got, err)
			}

			// A deleted id can be reused; its versions keep increasing.
			if _, err := s.Write(ctx, func(tx *Tx) error { return tx.Delete(KindApplication, "mobile") }); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Get(ctx, KindApplication, "mobile"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("deleted record: %v, want ErrNotFound", err)
			}
			again := create(t, s, Record{Kind: KindApplication, ID: "mobile", Body: []byte(`{}`)})
			if again.Version != 4 {
				t.Fatalf("reused id: version %d, want 4", again.Version)
			}

			// A transaction that fails leaves nothing, not even its revision.
			before, _ := s.Revision(ctx)
			_, err = s.Write(ctx, func(tx *Tx) error {
				if _, err := tx.Create(Record{Kind: KindPolicy, ID: "gold", Body: []byte(`{}`)}); err != nil {
					return err
				}
				return errors.New("changed my mind")
			})
			after, _ := s.Revision(ctx)
			if err == nil || after != before {
				t.Fatalf("failed write: err %v, revision %d -> %d", err, before, after)
			}
			if _, err := s.Get(ctx, KindPolicy, "gold"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("rolled-back record: %v", err)
			}
		})
	}
}

func TestListPaging(t *testing.T) {
	for name, newStore := range backends(t) {
		t.Run(name, func(t *testing.T) {
			s := newStore(t)
			for i := range 7 {
				owner := "alice"
				if i%2 == 1 {
					owner = "bob"
				}
				create(t, s, Record{Kind: KindApplication, ID: fmt.Sprintf("app-%d", i), Owner: owner, Body: []byte(`{}`)})
			}
			tests := []struct {
				f     Filter
				ids   []string
				total int
			}{
				{Filter{Limit: 3}, []string{"app-0", "app-1", "app-2"}, 7},
				{Filter{Offset: 5, Limit: 3}, []string{"app-5", "app-6"}, 7},
				{Filter{Offset: 6}, []string{"app-6"}, 7},
				{Filter{Owner: "bob", Limit: 2}, []string{"app-1", "app-3"}, 3},
				{Filter{Owner: "carol"}, nil, 0},
			}
			for _, tt := range tests {
				recs, total, err := s.List(context.Background(), KindApplication, tt.f)
				if err != nil {
					t.Fatal(err)
				}
				var ids []string
				for _, r := range recs {
					ids = append(ids, r.ID)
				}
				if fmt.Sprint(ids) != fmt.Sprint(tt.ids) || total != tt.total {
					t.Errorf("%+v: %v (total %d), want %v (total %d)", tt.f, ids, total, tt.ids, tt.total)
				}
			}
		})
	}
}

func TestClaims(t *testing.T) {
	for name, newStore := range backends(t) {
		t.Run(name, func(t *testing.T) {
			s := newStore(t)
			ctx := context.Background()
			claim := func(holder string, values ...string) error {
				_, err := s.Write(ctx, func(tx *Tx) error { return tx.Claim("clientId", holder, values) })
				return err
			}
			if err := claim("application:a", "c1", "c2"); err != nil {
				t.Fatal(err)
			}
			var ce *ClaimError
			if err := claim("application:b", "c2"); !errors.As(err, &ce) || ce.Holder != "application:a" {
				t.Fatalf("taken value: %v", err)
			}
			// Claiming again replaces what a holder held.
			if err := claim("application:a", "c1"); err != nil {
				t.Fatal(err)
			}
			if err := claim("application:b", "c2"); err != nil {
				t.Fatalf("released value: %v", err)
			}
		})
	}
}

func TestChangesAndWatch(t *testing.T) {
	for name, newStore := range backends(t) {
		t.Run(name, func(t *testing.T) {
			s := newStore(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			woken := make(chan struct{}, 16)
			go s.Watch(ctx, func() { woken <- struct{}{} })
			waitWoken(t, woken) // watching: a write from now on is news

			rev, err := s.Snapshot(ctx, []Kind{KindApplication}, func(Record) error { return nil })
			if err != nil || rev != 0 {
				t.Fatalf("empty snapshot: revision %d, %v", rev, err)
			}
			create(t, s, Record{Kind: KindApplication, ID: "a", Body: []byte(`{}`)})
			create(t, s, Record{Kind: KindApplication, ID: "b", Body: []byte(`{}`)})
			if _, err := s.Write(ctx, func(tx *Tx) error { return tx.Delete(KindApplication, "a") }); err != nil {
				t.Fatal(err)
			}
			waitWoken(t, woken)
			changes, next, err := s.Changes(ctx, rev)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, c := range changes {
				got = append(got, fmt.Sprintf("%s@%d deleted=%v", c.ID, c.Revision, c.Deleted))
			}
			if want := "[b@2 deleted=false a@3 deleted=true]"; fmt.Sprint(got) != want || next != 3 {
				t.Fatalf("changes: %v up to %d, want %s up to 3", got, next, want)
			}
			if more, again, _ := s.Changes(ctx, next); len(more) != 0 || again != next {
				t.Fatalf("changes after the last: %d up to %d", len(more), again)
			}
		})
	}
}

func waitWoken(t *testing.T, woken chan struct{}) {
	t.Helper()
	select {
	case <-woken:
	case <-time.After(10 * time.Second):
		t.Fatal("the watcher was not woken")
	}
}

// Two control planes on one PostgreSQL database: a write through one wakes
// the other's watcher through LISTEN/NOTIFY, with polling out of play.
func TestNotifyAcrossControlPlanes(t *testing.T) {
	url := testpg.Database(t)
	a := open(t, Options{Postgres: url})
	b := open(t, Options{Postgres: url})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	woken := make(chan struct{}, 16)
	go b.Watch(ctx, func() { woken <- struct{}{} })
	// Once for the watch beginning and once for the listener connected;
	// then a write can only be news through a notification.
	waitWoken(t, woken)
	waitWoken(t, woken)
	create(t, a, Record{Kind: KindAPI, ID: "petstore", Body: []byte(`{}`)})
	deadline := time.After(10 * time.Second)
	for {
		select {
		case <-woken:
			if changes, _, _ := b.Changes(ctx, 0); len(changes) == 1 {
				return
			}
		case <-deadline:
			t.Fatal("the other control plane was not told of the write")
		}
	}
}

func TestMigrationsAreIdempotent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tollgate.db")
	s := open(t, Options{SQLite: path})
	create(t, s, Record{Kind: KindPolicy, ID: "gold", Body: []byte(`{}`)})
	s.Close()
	s2 := open(t, Options{SQLite: path})
	if _, err := s2.Get(context.Background(), KindPolicy, "gold"); err != nil {
		t.Fatalf("after reopening: %v", err)
	}
}
