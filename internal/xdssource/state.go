package xdssource

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/protobuf/proto"

	"github.com/tollgate/tollgate/internal/resources"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

// stateFile is the last applied state in the state directory: a
// tollgate.v1.Resources message in protobuf encoding.
const stateFile = "resources.pb"

// held is the resources a replica holds, by type and name, each with its
// version (as the control plane computes it: the SHA-256 of its
// deterministic encoding).
type held map[string]map[string]entry

type entry struct {
	msg     proto.Message
	version string
}

func versionOf(m proto.Message) (string, error) {
	b, err := cache.MarshalResource(m)
	if err != nil {
		return "", err
	}
	return cache.HashResource(b), nil
}

func (h held) set() resources.Set {
	s := resources.Set{}
	for t, byName := range h {
		s[t] = make(map[string]proto.Message, len(byName))
		for name, e := range byName {
			s[t][name] = e.msg
		}
	}
	return s
}

func (h held) versions(typeURL string) map[string]string {
	out := make(map[string]string, len(h[typeURL]))
	for name, e := range h[typeURL] {
		out[name] = e.version
	}
	return out
}

// heldFrom names and versions a bundle's resources.
func heldFrom(r *tollgatev1.Resources) (held, error) {
	set, err := resources.Split(r)
	if err != nil {
		return nil, err
	}
	h := held{}
	for t, byName := range set {
		h[t] = make(map[string]entry, len(byName))
		for name, m := range byName {
			v, err := versionOf(m)
			if err != nil {
				return nil, err
			}
			h[t][name] = entry{msg: m, version: v}
		}
	}
	return h, nil
}

// readState reads the state directory; no state yet is (nil, nil).
func readState(dir string) (*tollgatev1.Resources, error) {
	data, err := os.ReadFile(filepath.Join(dir, stateFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading state: %w", err)
	}
	r := &tollgatev1.Resources{}
	if err := proto.Unmarshal(data, r); err != nil {
		return nil, fmt.Errorf("state %s is damaged: %w", filepath.Join(dir, stateFile), err)
	}
	return r, nil
}

// writeState replaces the state file atomically: written beside it,
// synced, renamed over it, and the directory synced, so that a crash
// leaves the old state or the new one, never half of one.
func writeState(dir string, r *tollgatev1.Resources) error {
	data, err := proto.MarshalOptions{Deterministic: true}.Marshal(r)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".resources-*.pb")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after the rename, there is nothing to remove
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, stateFile)); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
