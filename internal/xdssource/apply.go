package xdssource

import (
	"context"
	"fmt"
	"strings"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/tollgate/tollgate/internal/model"
	"github.com/tollgate/tollgate/internal/resources"
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
		ch.updated[r.GetName()] = entry{msg: m, version: r.GetVersion()}
		delete(ch.removed, r.GetName())
	}
	for _, name := range resp.GetRemovedResources() {
		delete(ch.updated, name)
		ch.removed[name] = true
	}
	return nil
}

// apply compiles the held resources with the change and, if they are
// valid, publishes the result. Nothing changes otherwise.
func (c *Client) apply(t string, ch *change, version string) error {
	c.mu.Lock()
	next := make(held, len(c.held))
	for k, v := range c.held {
		next[k] = v
	}
	c.mu.Unlock()
	byName := make(map[string]entry, len(next[t])+len(ch.updated))
	for name, e := range next[t] {
		if !ch.removed[name] {
			byName[name] = e
		}
	}
	for name, e := range ch.updated {
		byName[name] = e
	}
	next[t] = byName
	snap, err := c.compile(next, c.isLoaded())
	if err != nil {
		return err
	}
	snap.Version = version
	c.publish(snap, func() {
		c.held = next
		c.versions[t] = version
		c.status.Source = "controlPlane"
		c.status.LastUpdate = c.o.Now().UTC()
	})
	c.o.Log.Info("applied an update from the control plane", "type", resources.ShortName(t), "version", version,
		"updated", len(ch.updated), "removed", len(ch.removed), "held_back", snap.Held)
	select {
	case c.dirty <- struct{}{}:
	default: // a write is already due
	}
	return nil
}

// maxNackProblems bounds the problems one NACK lists.
const maxNackProblems = 10

// compile builds the model from held resources, as a partial set.
// complete says every kind has arrived at least once.
func (c *Client) compile(h held, complete bool) (*model.Snapshot, error) {
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
	snap, problems := model.Compile(model.Input{Settings: settings, Resources: bundle, BaseDir: c.o.BaseDir, Now: now, Partial: true})
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
	update()
	c.status.Held = snap.Held
	c.mu.Unlock()
	c.metrics.update(c.o.Now())
	if c.o.Published != nil {
		c.o.Published(snap)
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

// writeStates writes the held state whenever it changed, one write at a
// time and the latest state each time, and once more on the way out.
func (c *Client) writeStates(ctx context.Context) {
	if c.o.StateDir == "" {
		return
	}
	write := func() {
		c.mu.Lock()
		set := c.held.set()
		c.mu.Unlock()
		bundle, err := resources.Join(set)
		if err == nil {
			err = writeState(c.o.StateDir, bundle)
		}
		if err != nil {
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
