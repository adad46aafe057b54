package controlplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/tollgate/tollgate/internal/model"
	"github.com/tollgate/tollgate/internal/resources"
	"github.com/tollgate/tollgate/internal/store"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

// storeSource keeps the caches in step with the database: a whole load
// at start, then only the records written since, as the store reports
// them (its own writes at once, other control planes' through
// PostgreSQL notifications, and polling in any case).
type storeSource struct {
	st      *store.Store
	caches  *caches
	metrics *metrics
	log     *slog.Logger
	now     func() time.Time
	baseDir string

	mu       sync.Mutex // serialises catching up
	revision int64
	// What replicas see of an API decides what they see of its
	// subscriptions: those of an API that is not served are held here.
	apiServed map[string]bool
	subsByAPI map[string]map[string]*tollgatev1.Subscription
	changes   uint64
	last      time.Time
	lastError string
}

// storeKinds are read in dependency order.
var storeKinds = []store.Kind{store.KindPolicy, store.KindIssuer, store.KindMtls, store.KindAPI,
	store.KindApplication, store.KindSubscription, store.KindAPIKey, store.KindRevokedToken}

// load reads every record and makes the caches hold what replicas get.
// The whole set is held to the data plane's rules once, as a file is.
func (s *storeSource) load(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	set := resources.Set{}
	for _, t := range resources.Types {
		set[t] = map[string]proto.Message{}
	}
	s.apiServed, s.subsByAPI = map[string]bool{}, map[string]map[string]*tollgatev1.Subscription{}
	var subs []*tollgatev1.Subscription
	rev, err := s.st.Snapshot(ctx, storeKinds, func(r store.Record) error {
		t, name, msg, ok, err := store.Served(r)
		if err != nil {
			return fmt.Errorf("%s %q: %w", r.Kind, r.ID, err)
		}
		switch r.Kind {
		case store.KindAPI:
			s.apiServed[r.ID] = ok
		case store.KindSubscription:
			if ok {
				sub := msg.(*tollgatev1.Subscription)
				s.holdSub(r.ID, sub)
				subs = append(subs, sub)
			}
			return nil
		}
		if ok {
			set[t][name] = msg
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("reading the store: %w", err)
	}
	for _, sub := range subs {
		if s.apiServed[sub.GetApi()] {
			set[resources.Subscription][resources.SubscriptionName(sub)] = sub
		}
	}
	bundle, err := resources.Join(set)
	if err == nil {
		_, ps := model.Compile(model.Input{Resources: bundle, Partial: true, BaseDir: s.baseDir, Now: s.now()})
		if len(ps) > 0 {
			for _, p := range ps {
				s.log.Error("stored resource problem", "problem", p.String())
			}
			err = fmt.Errorf("the store holds resources the data plane refuses (%d problem(s), logged)", len(ps))
		}
	}
	if err != nil {
		s.metrics.loads.WithLabelValues("failure").Inc()
		return err
	}
	changes, err := s.caches.apply(set)
	if err != nil {
		return err
	}
	s.revision = rev
	s.metrics.loads.WithLabelValues("success").Inc()
	s.noteChanges(changes)
	s.log.Info("store loaded", "store", s.st.Kind(), "revision", rev, "resources", set.Count())
	return nil
}

func (s *storeSource) holdSub(id string, sub *tollgatev1.Subscription) {
	byID := s.subsByAPI[sub.GetApi()]
	if byID == nil {
		byID = map[string]*tollgatev1.Subscription{}
		s.subsByAPI[sub.GetApi()] = byID
	}
	byID[id] = sub
}

// catchUp applies what was written since the last revision seen.
func (s *storeSource) catchUp(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	recs, rev, err := s.st.Changes(ctx, s.revision)
	if err != nil || len(recs) == 0 {
		return err
	}
	update, remove := resources.Set{}, map[string][]string{}
	put := func(t, name string, m proto.Message) {
		if update[t] == nil {
			update[t] = map[string]proto.Message{}
		}
		update[t][name] = m
	}
	drop := func(t, name string) {
		delete(update[t], name)
		remove[t] = append(remove[t], name)
	}
	for _, r := range recs {
		t, name, msg, ok, err := store.Served(r)
		if err != nil {
			// Nothing of this batch is applied; it is read again next time.
			return fmt.Errorf("%s %q: %w", r.Kind, r.ID, err)
		}
		switch r.Kind {
		case store.KindAPI:
			s.apiServed[r.ID] = ok
			// Its subscriptions follow it on and off the replicas.
			for subName, sub := range s.subsByAPI[r.ID] {
				if ok {
					put(resources.Subscription, subName, sub)
				} else {
					drop(resources.Subscription, subName)
				}
			}
		case store.KindSubscription:
			for _, byID := range s.subsByAPI {
				delete(byID, r.ID)
			}
			if ok {
				s.holdSub(r.ID, msg.(*tollgatev1.Subscription))
				ok = s.apiServed[msg.(*tollgatev1.Subscription).GetApi()]
			}
		}
		if ok {
			put(t, name, msg)
		} else {
			drop(t, name)
		}
	}
	changes, err := s.caches.patch(update, remove)
	if err != nil {
		return err
	}
	s.revision = rev
	s.noteChanges(changes)
	return nil
}

func (s *storeSource) noteChanges(changes []Change) {
	if len(changes) == 0 {
		return
	}
	s.changes++
	s.last = s.now()
	s.metrics.version.Set(float64(s.changes))
	s.metrics.updated.Set(float64(s.last.UnixNano()) / 1e9)
	for t, n := range s.caches.counts() {
		s.metrics.resources.WithLabelValues(t).Set(float64(n))
	}
	for _, c := range changes {
		s.log.Info("resources changed", "type", resources.ShortName(c.Type), "updated", c.Updated, "removed", c.Removed)
	}
}

// watch follows the store until ctx is done, and purges old tombstones
// and idempotency records now and then.
func (s *storeSource) watch(ctx context.Context) {
	housekeeping := time.Now()
	s.st.Watch(ctx, func() {
		err := s.catchUp(ctx)
		s.mu.Lock()
		if err != nil && !errors.Is(err, context.Canceled) {
			if s.lastError != err.Error() {
				s.log.Error("store changes not applied; retrying", "error", err.Error())
			}
			s.lastError = err.Error()
		} else {
			s.lastError = ""
		}
		s.mu.Unlock()
		if time.Since(housekeeping) > time.Hour {
			housekeeping = time.Now()
			if n, err := s.st.PurgeTombstones(ctx, 24*time.Hour); err == nil && n > 0 {
				s.log.Info("store tombstones purged", "records", n)
			}
			_ = s.st.ForgetIdempotency(ctx, 24*time.Hour)
		}
	})
}

func (s *storeSource) status() sourceStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return sourceStatus{Source: s.st.Kind(), Changes: s.changes, LastChange: s.last, LastError: s.lastError, Resources: s.caches.counts()}
}
