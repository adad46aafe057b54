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

	"github.com/tollgate/tollgate/internal/keys"
	"github.com/tollgate/tollgate/internal/model"
	"github.com/tollgate/tollgate/internal/resources"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

// change is what one response (or the pieces of one) does to one kind.
type change struct {
	updated map[string]entry
	removed map[string]bool
}

func isPiece(resp *discovery.DeltaDiscoveryResponse) bool {
	return strings.HasSuffix(resp.GetSystemVersionInfo(), resources.PartialSuffix)
}

// handle applies one response, or keeps it while more pieces of it are
// to come, and returns the ACK or NACK to send.
func (c *Client) handle(resp *discovery.DeltaDiscoveryResponse, pieces map[string]*change) (reply *discovery.DeltaDiscoveryRequest, refused bool) {
	t := resp.GetTypeUrl()
	reply = &discovery.DeltaDiscoveryRequest{TypeUrl: t, ResponseNonce: resp.GetNonce()}
	ch := pieces[t]
	if ch == nil {
		ch = &change{updated: map[string]entry{}, removed: map[string]bool{}}
	}
	err := ch.add(t, resp)
	if err == nil && isPiece(resp) {
		pieces[t] = ch
		return reply, false
	}
	delete(pieces, t)
	if err == nil && len(ch.updated)+len(ch.removed) == 0 {
		// Nothing to do (the answer to a reconnect that holds every
		// version already): nothing is recompiled, no cache flushed.
		c.noted(t, resp.GetSystemVersionInfo())
		return reply, false
	}
	if err == nil {
		err = c.apply(t, ch, resp.GetSystemVersionInfo())
	}
	if err != nil {
		c.refused(t, resp.GetSystemVersionInfo(), err)
		reply.ErrorDetail = &status.Status{Code: int32(codes.InvalidArgument), Message: err.Error()}
		return reply, true
	}
	c.metrics.applied(t)
	return reply, false
}

// add decodes a response's resources into the change.
func (ch *change) add(t string, resp *discovery.DeltaDiscoveryResponse) error {
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

// apply compiles the held resources with the change and, if they are
// valid, publishes the result. Nothing changes otherwise. Compiled API
// keys are reused as they are (they refer to applications by id), and a
// change of keys is applied to the last snapshot without recompiling
// the rest (model.ApplyAPIKeys).
func (c *Client) apply(t string, ch *change, version string) error {
	if t == resources.ApiKey {
		return c.applyKeys(ch, version)
	}
	c.mu.Lock()
	next := maps.Clone(c.held)
	c.mu.Unlock()
	byName := make(map[string]entry, len(next[t])+len(ch.updated))
	for name, e := range next[t] {
		if !ch.removed[name] {
			byName[name] = e
		}
	}
	for name, e := range ch.updated {
		e.raw = nil // journalled by applied
		byName[name] = e
	}
	next[t] = byName
	snap, err := c.compile(next, keysOf(c.last), c.isLoaded())
	if err != nil {
		return err
	}
	snap.Version = version
	c.publish(snap, func() {
		c.held = next
		c.applied(t, ch, version)
	})
	c.garbage()
	c.logApplied(t, ch, version, snap)
	return nil
}

// keysOf is a snapshot's compiled keys, if there is a snapshot.
func keysOf(s *model.Snapshot) *keys.APIKeyIndex {
	if s == nil {
		return nil
	}
	return s.APIKeys
}

// largeKeyChange is the size of a change of keys after which the garbage
// is returned to the system at once (an initial sync).
const largeKeyChange = 10_000

// applyKeys applies a change of API keys to the snapshot this client
// published last (or, before any, to one of what it holds).
func (c *Client) applyKeys(ch *change, version string) error {
	base := c.last
	if base == nil {
		var err error
		if base, err = c.compile(c.held, nil, c.isLoaded()); err != nil {
			return err
		}
	}
	// In no particular order: sorting a million names costs seconds, and
	// names[i] still says which key problem i is about.
	names := make([]string, 0, len(ch.updated))
	set := make([]*tollgatev1.ApiKey, 0, len(ch.updated))
	for name, e := range ch.updated {
		names = append(names, name)
		set = append(set, e.msg.(*tollgatev1.ApiKey))
	}
	remove := make([]keys.Digest, 0, len(ch.removed))
	for name := range ch.removed {
		if d, err := keys.ParseDigest(name); err == nil {
			remove = append(remove, d)
		}
	}
	snap, problems := model.ApplyAPIKeys(base, set, remove)
	if len(problems) > 0 {
		msgs := make([]string, 0, min(len(problems), maxNackProblems))
		for _, p := range problems[:min(len(problems), maxNackProblems)] {
			msgs = append(msgs, keyWhere(names, p.Path)+": "+p.Msg)
		}
		if len(problems) > maxNackProblems {
			msgs = append(msgs, fmt.Sprintf("and %d more", len(problems)-maxNackProblems))
		}
		return fmt.Errorf("%s", strings.Join(msgs, "; "))
	}
	snap.Version, snap.LoadedAt = version, c.o.Now()
	versions := make(map[keys.Digest]string, len(ch.updated))
	for name, e := range ch.updated {
		if d, err := keys.ParseDigest(name); err == nil {
			versions[d] = e.version
		}
	}
	c.publish(snap, func() {
		c.keys.change(versions, remove)
		c.applied(resources.ApiKey, ch, version)
	})
	if len(set)+len(remove) >= largeKeyChange {
		c.garbage()
	}
	c.logApplied(resources.ApiKey, ch, version, snap)
	return nil
}

// keyWhere names the key a problem path of ApplyAPIKeys is about.
func keyWhere(names []string, path string) string {
	var i int
	var field string
	if n, _ := fmt.Sscanf(path, "apiKeys[%d]", &i); n == 1 && i >= 0 && i < len(names) {
		if _, rest, ok := strings.Cut(path, "]."); ok {
			field = ": " + rest
		}
		return fmt.Sprintf("ApiKey %q%s", names[i], field)
	}
	return path
}

// applied records a published change; the caller holds c.mu.
func (c *Client) applied(t string, ch *change, version string) {
	c.versions[t] = version
	c.status.Source = "controlPlane"
	c.status.LastUpdate = c.o.Now().UTC()
	if c.state == nil {
		return
	}
	// Unordered: a record's names are unique, so order means nothing.
	r := record{typeURL: t, removed: slices.Collect(maps.Keys(ch.removed)), set: make([][]byte, 0, len(ch.updated))}
	for _, e := range ch.updated {
		r.set = append(r.set, e.raw)
	}
	c.journal = append(c.journal, r)
	select {
	case c.dirty <- struct{}{}:
	default: // a write is already due
	}
}

func (c *Client) logApplied(t string, ch *change, version string, snap *model.Snapshot) {
	c.o.Log.Info("applied an update from the control plane", "type", resources.ShortName(t), "version", version,
		"updated", len(ch.updated), "removed", len(ch.removed), "held_back", snap.Held)
}

// maxNackProblems bounds the problems one NACK lists.
const maxNackProblems = 10

// compile builds the model from held resources, as a partial set.
// complete says every kind has arrived at least once.
// apiKeys, if set, are the compiled keys to use (h holds none then).
func (c *Client) compile(h held, apiKeys *keys.APIKeyIndex, complete bool) (*model.Snapshot, error) {
	set := h.set()
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
	snap, problems := model.Compile(model.Input{Settings: settings, Resources: bundle, BaseDir: c.o.BaseDir, Now: now, Partial: true, APIKeys: apiKeys})
	if len(problems) > 0 {
		msgs := make([]string, 0, min(len(problems), maxNackProblems))
		for _, p := range problems[:min(len(problems), maxNackProblems)] {
			msgs = append(msgs, resources.Where(set, p.Path)+": "+p.Msg)
		}
		if len(problems) > maxNackProblems {
			msgs = append(msgs, fmt.Sprintf("and %d more", len(problems)-maxNackProblems))
		}
		return nil, fmt.Errorf("%s", strings.Join(msgs, "; "))
	}
	if c.o.Prepare != nil {
		if err := c.o.Prepare(snap); err != nil {
			return nil, err
		}
	}
	snap.LoadedAt = now
	return snap, nil
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
			pending += len(r.set) + len(r.removed)
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
