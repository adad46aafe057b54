package xdssource

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/tollgate/tollgate/internal/catalog"
	"github.com/tollgate/tollgate/internal/keys"
	"github.com/tollgate/tollgate/internal/model"
	"github.com/tollgate/tollgate/internal/resources"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

// incoming is what the pieces of one response do to one kind, so far.
type incoming interface {
	add(resp *discovery.DeltaDiscoveryResponse) error
	size() int // resources set or removed
}

// change is an incoming change to any kind but API keys (keyBatch).
type change struct {
	updated map[string]entry
	removed map[string]bool
}

func (ch *change) size() int { return len(ch.updated) + len(ch.removed) }

func isPiece(resp *discovery.DeltaDiscoveryResponse) bool {
	return strings.HasSuffix(resp.GetSystemVersionInfo(), resources.PartialSuffix)
}

// stage decodes a piece of a response and keeps it until the rest has
// come. A piece that is not valid spoils the response: the rest of it is
// dropped as it comes, and its end refused.
func (c *Client) stage(resp *discovery.DeltaDiscoveryResponse, p *pending) {
	t := resp.GetTypeUrl()
	if p.spoiled[t] != nil {
		return
	}
	in := p.changes[t]
	if in == nil {
		in = c.newIncoming(t)
		p.changes[t] = in
	}
	if err := in.add(resp); err != nil {
		delete(p.changes, t)
		p.spoiled[t] = err
	}
}

// pending is what a stream has received of responses still coming in
// pieces, by type.
type pending struct {
	changes map[string]incoming
	spoiled map[string]error // a piece was not valid
}

func newPending() *pending {
	return &pending{changes: map[string]incoming{}, spoiled: map[string]error{}}
}

// handle applies a whole response, or the last piece of one with those
// staged before it, and returns the ACK or NACK to send.
func (c *Client) handle(resp *discovery.DeltaDiscoveryResponse, p *pending) (reply *discovery.DeltaDiscoveryRequest, refused bool) {
	t := resp.GetTypeUrl()
	reply = ack(resp)
	err := p.spoiled[t]
	in := p.changes[t]
	delete(p.spoiled, t)
	delete(p.changes, t)
	if in == nil {
		in = c.newIncoming(t)
	}
	if err == nil {
		err = in.add(resp)
	}
	if err == nil && in.size() == 0 {
		// Nothing to do (the answer to a reconnect that holds every
		// version already): nothing is recompiled, no cache flushed.
		c.noted(t, resp.GetSystemVersionInfo())
		return reply, false
	}
	if err == nil {
		switch in := in.(type) {
		case *keyBatch:
			err = c.applyKeys(in, resp.GetSystemVersionInfo())
		case *change:
			err = c.applyChange(t, in, resp.GetSystemVersionInfo())
		}
	}
	if err != nil {
		c.refused(t, resp.GetSystemVersionInfo(), err)
		reply.ErrorDetail = &status.Status{Code: int32(codes.InvalidArgument), Message: err.Error()}
		return reply, true
	}
	c.metrics.applied(t)
	return reply, false
}

func ack(resp *discovery.DeltaDiscoveryResponse) *discovery.DeltaDiscoveryRequest {
	return &discovery.DeltaDiscoveryRequest{TypeUrl: resp.GetTypeUrl(), ResponseNonce: resp.GetNonce()}
}

// newIncoming starts a change to kind t. Keys are compiled against the
// applications published last, so that they share their ids.
func (c *Client) newIncoming(t string) incoming {
	if t == resources.ApiKey {
		var apps map[string]*catalog.Application
		c.mu.Lock()
		if c.last != nil {
			apps = c.last.Applications
		}
		c.mu.Unlock()
		return newKeyBatch(apps)
	}
	return &change{updated: map[string]entry{}, removed: map[string]bool{}}
}

// add decodes a response's resources into the change.
func (ch *change) add(resp *discovery.DeltaDiscoveryResponse) error {
	t := resp.GetTypeUrl()
	if resources.New(t) == nil {
		return fmt.Errorf("type %s is not a Tollgate resource", t)
	}
	for _, r := range resp.GetResources() {
		if got := r.GetResource().GetTypeUrl(); got != t {
			return fmt.Errorf("%s %q: the response is for %s but the resource is a %s", resources.ShortName(t), r.GetName(), t, got)
		}
		m := resources.New(t)
		if err := proto.Unmarshal(r.GetResource().GetValue(), m); err != nil {
			return fmt.Errorf("%s %q: %w", resources.ShortName(t), r.GetName(), err)
		}
		if want := resources.NameOf(t, m); r.GetName() != want {
			return fmt.Errorf("%s %q: a resource with these contents is named %q", resources.ShortName(t), r.GetName(), want)
		}
		raw, err := encodingOf(m, r.GetResource().GetValue(), r.GetVersion())
		if err != nil {
			return fmt.Errorf("%s %q: %w", resources.ShortName(t), r.GetName(), err)
		}
		ch.updated[r.GetName()] = entry{msg: m, version: r.GetVersion(), raw: raw}
		delete(ch.removed, r.GetName())
	}
	for _, name := range resp.GetRemovedResources() {
		delete(ch.updated, name)
		ch.removed[name] = true
	}
	return nil
}

// record is the change as a journal record. Unordered: a record's names
// are unique, so order means nothing.
func (ch *change) record(t string) record {
	r := record{typeURL: t, removed: slices.Collect(maps.Keys(ch.removed))}
	for _, e := range ch.updated {
		r.set.add(e.raw)
	}
	return r
}

// applyChange applies a change to any kind but keys: subscriptions on
// their own once there is a snapshot to apply them to, anything else by
// compiling what is held again (keeping what it leaves compiled).
func (c *Client) applyChange(t string, ch *change, version string) error {
	if !c.published() {
		return c.apply(t, ch, version)
	}
	switch t {
	case resources.Subscription:
		return c.applySubscriptions(ch, version)
	case resources.Application:
		if done, err := c.applyApplications(ch, version); done {
			return err
		}
	}
	return c.apply(t, ch, version)
}

// apply compiles the held resources with the change and, if they are
// valid, publishes the result. Nothing changes otherwise. Compiled API
// keys are reused as they are (they refer to applications by id).
func (c *Client) apply(t string, ch *change, version string) error {
	c.mu.Lock()
	next := maps.Clone(c.held)
	c.mu.Unlock()
	rec := ch.record(t)
	byName := make(map[string]entry, len(next[t])+len(ch.updated))
	for name, e := range next[t] {
		if !ch.removed[name] {
			byName[name] = e
		}
	}
	for name, e := range ch.updated {
		e.raw = nil // journalled by rec
		byName[name] = e
	}
	next[t] = byName
	snap, err := c.compile(next, reusable(c.last, t), c.isLoaded())
	if err != nil {
		return err
	}
	snap.Version = version
	c.publish(snap, func() {
		c.held = next
		c.applied(t, version, rec)
	})
	if ch.size() >= largeChange {
		c.garbage()
	}
	c.logApplied(t, version, len(ch.updated), len(ch.removed), snap)
	return nil
}

// keysOf is a snapshot's compiled keys, if there is a snapshot.
func keysOf(s *model.Snapshot) *keys.APIKeyIndex {
	if s == nil {
		return nil
	}
	return s.APIKeys
}

// compiled are kinds compiled already, for a compile to use as they are.
type compiled struct {
	keys          *keys.APIKeyIndex
	subscriptions *catalog.Subscriptions
}

// reusable is what a change to kind t leaves of s compiled: its keys,
// and its subscriptions unless subscriptions or the rate-limit policies
// they are bound to changed.
func reusable(s *model.Snapshot, t string) compiled {
	if s == nil {
		return compiled{}
	}
	r := compiled{keys: s.APIKeys}
	if t != resources.Subscription && t != resources.RateLimitPolicy {
		r.subscriptions = s.Subscriptions
	}
	return r
}

// largeChange is the size of a change after which the garbage is
// returned to the system at once (an initial sync).
const largeChange = 10_000

// applyKeys applies a batch of API keys, compiled already, to the
// snapshot this client published last (or, before any, to one of what it
// holds) without recompiling the rest (model.ApplyAPIKeys).
func (c *Client) applyKeys(b *keyBatch, version string) error {
	c.mu.Lock()
	base := c.last
	c.mu.Unlock()
	if base == nil {
		var err error
		if base, err = c.compile(c.held, compiled{}, c.isLoaded()); err != nil {
			return err
		}
	}
	snap := model.ApplyAPIKeys(base, b.set, b.removed)
	snap.Version, snap.LoadedAt = version, c.o.Now()
	c.publish(snap, func() {
		c.otherVersions.change(b)
		c.applied(resources.ApiKey, version, b.record())
	})
	if b.size() >= largeChange {
		c.garbage()
	}
	c.logApplied(resources.ApiKey, version, len(b.set), len(b.removed), snap)
	return nil
}

// applySubscriptions applies a change of subscriptions to the snapshot
// published last, compiling only the subscriptions it names
// (model.ApplySubscriptions).
func (c *Client) applySubscriptions(ch *change, version string) error {
	t := resources.Subscription
	c.mu.Lock()
	base, byName := c.last, c.held[t]
	c.mu.Unlock()
	names, set := changedMessages[*tollgatev1.Subscription](ch)
	var remove []catalog.SubscriptionKey
	for name := range ch.removed {
		if e, ok := byName[name]; ok {
			s := e.msg.(*tollgatev1.Subscription)
			remove = append(remove, catalog.SubscriptionKey{App: s.GetApplication(), API: s.GetApi()})
		}
	}
	snap, problems := model.ApplySubscriptions(base, set, remove)
	if len(problems) > 0 {
		return problemsError(stagedSet(t, names, set), problems)
	}
	c.publishChange(t, ch, version, snap)
	return nil
}

// applyApplications applies a change of applications to the snapshot
// published last, compiling only the applications it names
// (model.ApplyApplications). done is false when that cannot be done;
// nothing is changed then.
func (c *Client) applyApplications(ch *change, version string) (done bool, err error) {
	t := resources.Application
	c.mu.Lock()
	base := c.last
	c.mu.Unlock()
	names, set := changedMessages[*tollgatev1.Application](ch)
	snap, problems, ok := model.ApplyApplications(base, set, slices.Collect(maps.Keys(ch.removed)))
	switch {
	case !ok:
		return false, nil
	case len(problems) > 0:
		return true, problemsError(stagedSet(t, names, set), problems)
	}
	c.publishChange(t, ch, version, snap)
	return true, nil
}

// changedMessages is what a change sets, in name order.
func changedMessages[M proto.Message](ch *change) (names []string, msgs []M) {
	names = slices.Sorted(maps.Keys(ch.updated))
	msgs = make([]M, len(names))
	for i, name := range names {
		msgs[i] = ch.updated[name].msg.(M)
	}
	return names, msgs
}

// stagedSet is a change's messages as a set, for problemsError: a
// problem's index is one into msgs.
func stagedSet[M proto.Message](t string, names []string, msgs []M) resources.Set {
	set := resources.Set{t: make(map[string]proto.Message, len(names))}
	for i, name := range names {
		set[t][name] = msgs[i]
	}
	return set
}

// publishChange publishes a snapshot that applied ch on its own, and
// holds ch's resources in place of those they replace.
func (c *Client) publishChange(t string, ch *change, version string, snap *model.Snapshot) {
	snap.Version, snap.LoadedAt = version, c.o.Now()
	rec := ch.record(t)
	c.publish(snap, func() {
		byName := c.held[t]
		for name := range ch.removed {
			delete(byName, name)
		}
		for name, e := range ch.updated {
			e.raw = nil // journalled by rec
			byName[name] = e
		}
		c.applied(t, version, rec)
	})
	if ch.size() >= largeChange {
		c.garbage()
	}
	c.logApplied(t, version, len(ch.updated), len(ch.removed), snap)
}

// applied records a published change; the caller holds c.mu.
func (c *Client) applied(t, version string, rec record) {
	c.versions[t] = version
	c.status.Source = "controlPlane"
	c.status.LastUpdate = c.o.Now().UTC()
	if c.state == nil {
		return
	}
	c.journal = append(c.journal, rec)
	select {
	case c.dirty <- struct{}{}:
	default: // a write is already due
	}
}

func (c *Client) logApplied(t, version string, updated, removed int, snap *model.Snapshot) {
	c.o.Log.Info("applied an update from the control plane", "type", resources.ShortName(t), "version", version,
		"updated", updated, "removed", removed, "held_back", snap.Held)
}

// maxNackProblems bounds the problems one NACK lists.
const maxNackProblems = 10

// compile builds the model from held resources, as a partial set.
// complete says every kind has arrived at least once.
// reuse are kinds compiled already (h holds no API keys then).
func (c *Client) compile(h held, reuse compiled, complete bool) (*model.Snapshot, error) {
	var skip []string
	if reuse.subscriptions != nil {
		skip = append(skip, resources.Subscription)
	}
	set := h.set(skip...)
	bundle, err := resources.Join(set)
	if err != nil {
		return nil, err
	}
	now := c.o.Now()
	settings := c.o.Settings
	if !complete {
		// Until every kind has arrived once, an API may be missing: a
		// request for it must not pass as unmatched.
		settings.UnmatchedAllow = false
	}
	snap, problems := model.Compile(model.Input{Settings: settings, Resources: bundle, BaseDir: c.o.BaseDir, Now: now,
		Partial: true, APIKeys: reuse.keys, Subscriptions: reuse.subscriptions})
	if len(problems) > 0 {
		return nil, problemsError(set, problems)
	}
	if c.o.Prepare != nil {
		if err := c.o.Prepare(snap); err != nil {
			return nil, err
		}
	}
	snap.LoadedAt = now
	return snap, nil
}

// problemsError lists the first problems, each at the resource of set
// it is about.
func problemsError(set resources.Set, problems []model.Problem) error {
	msgs := make([]string, 0, min(len(problems), maxNackProblems))
	for _, p := range problems[:min(len(problems), maxNackProblems)] {
		msgs = append(msgs, resources.Where(set, p.Path)+": "+p.Msg)
	}
	if len(problems) > maxNackProblems {
		msgs = append(msgs, fmt.Sprintf("and %d more", len(problems)-maxNackProblems))
	}
	return fmt.Errorf("%s", strings.Join(msgs, "; "))
}

// published reports whether this client has published a snapshot.
func (c *Client) published() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last != nil
}

// publish swaps a snapshot in; update records what it came from.
func (c *Client) publish(snap *model.Snapshot, update func()) {
	c.mu.Lock()
	c.o.Store.Swap(snap)
	c.last = snap
	update()
	c.status.Held = snap.Held
	c.mu.Unlock()
	c.metrics.update(c.o.Now())
}

// garbage tells Options.Garbage that much was left behind.
func (c *Client) garbage() {
	if c.o.Garbage != nil {
		c.o.Garbage()
	}
}

// noted records a version that changed nothing.
func (c *Client) noted(t, version string) {
	c.mu.Lock()
	c.versions[t] = version
	c.status.Source = "controlPlane"
	c.mu.Unlock()
}

func (c *Client) refused(t, version string, err error) {
	c.mu.Lock()
	c.status.LastNack = &Nack{Type: resources.ShortName(t), Version: version, Error: err.Error(), At: c.o.Now().UTC()}
	c.mu.Unlock()
	c.metrics.refused(t)
	c.o.Log.Error("refused an update from the control plane; keeping the current state",
		"type", resources.ShortName(t), "version", version, "error", err.Error())
}

// writeStates persists applied changes in the background, one write at
// a time: appended to the journal, or, when the journal has grown large
// (or there is no state yet), the whole state written afresh. It writes
// once more on the way out.
func (c *Client) writeStates(ctx context.Context) {
	if c.state == nil {
		return
	}
	write := func() {
		c.mu.Lock()
		recs := c.journal
		c.journal = nil
		c.mu.Unlock()
		pending := 0
		for _, r := range recs {
			pending += r.size()
		}
		var err error
		if c.state.needsCompaction(pending) {
			err = c.state.compact(recs)
			c.garbage()
		} else if len(recs) > 0 {
			err = c.state.appendRecords(recs)
		}
		if err != nil {
			// Kept for the next write, which compacts: a journal that failed
			// midway may hold part of them.
			c.mu.Lock()
			c.journal = append(recs, c.journal...)
			c.mu.Unlock()
			c.state.fresh = true
			c.o.Log.Error("cannot persist the control plane's state", "state_dir", c.o.StateDir, "error", err.Error())
		}
	}
	for {
		select {
		case <-c.dirty:
			write()
		case <-ctx.Done():
			select {
			case <-c.dirty:
				write()
			default:
			}
			return
		}
	}
}
