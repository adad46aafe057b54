package xdssource

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/tollgate/tollgate/internal/resources"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

// The state directory holds state-<G>.pb, the last compacted state (a
// tollgate.v1.Resources message in protobuf encoding), and journal-<G>.pb,
// the changes applied since. Compaction writes state-<G+1>.pb and only
// then removes generation G, so a crash at any point leaves a state and
// the journal that belongs to it, never an older journal replayed over a
// newer state.
const (
	statePattern   = "state-%d.pb"
	journalPattern = "journal-%d.pb"
)

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

// decodeState reads a state file: a tollgate.v1.Resources message whose
// every field is a resource. Each resource's version is the SHA-256 of
// its bytes in the file, which were written deterministically, as the
// control plane encodes it: nothing is encoded again to hash it. n counts
// the resources.
func decodeState(data []byte) (h held, n int, err error) {
	h = held{}
	for _, t := range resources.Types {
		h[t] = map[string]entry{}
	}
	fields := (&tollgatev1.Resources{}).ProtoReflect().Descriptor().Fields()
	for len(data) > 0 {
		num, typ, tl := protowire.ConsumeTag(data)
		if tl < 0 || typ != protowire.BytesType {
			return nil, 0, errors.New("not a resources message")
		}
		v, vl := protowire.ConsumeBytes(data[tl:])
		if vl < 0 {
			return nil, 0, errors.New("truncated")
		}
		data = data[tl+vl:]
		fd := fields.ByNumber(num)
		if fd == nil || fd.Message() == nil {
			continue // a field this version does not know
		}
		t := "type.googleapis.com/" + string(fd.Message().FullName())
		m := resources.New(t)
		if m == nil {
			continue
		}
		if err := proto.Unmarshal(v, m); err != nil {
			return nil, 0, err
		}
		sum := sha256.Sum256(v)
		h[t][resources.NameOf(t, m)] = entry{msg: m, version: hex.EncodeToString(sum[:])}
		n++
	}
	return h, n, nil
}

// stateStore reads and writes one state directory.
type stateStore struct {
	dir         string
	gen         int64 // of the current state file; 0: none yet
	fresh       bool  // the next write must be a whole state (damage, or a failed write)
	stateSize   int64
	journalSize int64
	// Resources in the state and in its journal, to tell when replaying
	// the journal would cost more than rereading a whole state.
	stateCount, journalCount int
}

// load reads the newest state and its journal; no state yet is (nil, nil).
func (s *stateStore) load() (held, []record, error) {
	entries, err := os.ReadDir(s.dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("reading state: %w", err)
	}
	for _, e := range entries {
		var g int64
		if _, err := fmt.Sscanf(e.Name(), statePattern, &g); err == nil && g > s.gen {
			s.gen = g
		}
	}
	if s.gen == 0 {
		return nil, nil, nil
	}
	path := filepath.Join(s.dir, fmt.Sprintf(statePattern, s.gen))
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("reading state: %w", err)
	}
	s.stateSize = int64(len(data))
	h, n, err := decodeState(data)
	if err != nil {
		return nil, nil, fmt.Errorf("state %s is damaged: %w", path, err)
	}
	journal, err := os.ReadFile(filepath.Join(s.dir, fmt.Sprintf(journalPattern, s.gen)))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, nil, fmt.Errorf("reading the state journal: %w", err)
	}
	s.journalSize = int64(len(journal))
	recs, err := decodeRecords(journal)
	if err != nil {
		return nil, nil, fmt.Errorf("state journal: %w", err)
	}
	s.stateCount = n
	for _, rec := range recs {
		s.journalCount += len(rec.set) + len(rec.removed)
	}
	return h, recs, nil
}

// compact writes a whole state as the next generation and removes the
// previous one with its journal.
func (s *stateStore) compact(r *tollgatev1.Resources) error {
	data, err := proto.MarshalOptions{Deterministic: true}.Marshal(r)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return err
	}
	next := s.gen + 1
	if err := writeFileSynced(s.dir, fmt.Sprintf(statePattern, next), data); err != nil {
		return err
	}
	for _, old := range []string{fmt.Sprintf(statePattern, s.gen), fmt.Sprintf(journalPattern, s.gen)} {
		if err := os.Remove(filepath.Join(s.dir, old)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	s.gen, s.stateSize, s.journalSize, s.fresh = next, int64(len(data)), 0, false
	s.stateCount, s.journalCount = count(r), 0
	return nil
}

// appendRecords journals changes to the current state.
func (s *stateStore) appendRecords(recs []record) error {
	var buf []byte
	for _, r := range recs {
		var err error
		if buf, err = r.encode(buf); err != nil {
			return err
		}
	}
	f, err := os.OpenFile(filepath.Join(s.dir, fmt.Sprintf(journalPattern, s.gen)), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Write(buf); err != nil {
		return err
	}
	s.journalSize += int64(len(buf))
	for _, r := range recs {
		s.journalCount += len(r.set) + len(r.removed)
	}
	return f.Sync()
}

// needsCompaction: no state yet, or a journal that would grow, with
// pending more resources, past a quarter of the state.
func (s *stateStore) needsCompaction(pending int) bool {
	return s.gen == 0 || s.fresh || s.journalCount+pending > max(s.stateCount/4, 1000)
}

func count(r *tollgatev1.Resources) int {
	n := len(r.GetIssuers()) + len(r.GetRevokedTokens()) + len(r.GetApis()) + len(r.GetApplications()) +
		len(r.GetSubscriptions()) + len(r.GetApiKeys()) + len(r.GetRateLimitPolicies())
	if r.GetMtls() != nil {
		n++
	}
	return n
}

// writeFileSynced writes a file beside its final name, syncs it, renames
// it into place and syncs the directory: a crash leaves the old file or
// the new one, never half of one.
func writeFileSynced(dir, name string, data []byte) error {
	tmp, err := os.CreateTemp(dir, "."+name+"-*")
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
	if err := os.Rename(tmp.Name(), filepath.Join(dir, name)); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// A journal record is a varint length and then, in protobuf wire form,
// field 1 the type URL, field 2 each resource set (its encoding), field 3
// each name removed.

// record is one applied change, as journalled.
type record struct {
	typeURL string
	set     []proto.Message
	removed []string
}

func (r record) encode(dst []byte) ([]byte, error) {
	var body []byte
	body = protowire.AppendTag(body, 1, protowire.BytesType)
	body = protowire.AppendString(body, r.typeURL)
	for _, m := range r.set {
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
		if err != nil {
			return nil, err
		}
		body = protowire.AppendTag(body, 2, protowire.BytesType)
		body = protowire.AppendBytes(body, b)
	}
	for _, name := range r.removed {
		body = protowire.AppendTag(body, 3, protowire.BytesType)
		body = protowire.AppendString(body, name)
	}
	dst = protowire.AppendVarint(dst, uint64(len(body)))
	return append(dst, body...), nil
}

// decodeRecords reads journal records; a torn last record (a crash in the
// middle of an append) ends the journal.
func decodeRecords(data []byte) ([]record, error) {
	var out []record
	for len(data) > 0 {
		n, l := protowire.ConsumeVarint(data)
		if l < 0 || uint64(len(data)-l) < n {
			break // torn tail
		}
		body := data[l : l+int(n)]
		data = data[l+int(n):]
		var r record
		for len(body) > 0 {
			num, typ, tl := protowire.ConsumeTag(body)
			if tl < 0 || typ != protowire.BytesType {
				return nil, fmt.Errorf("journal record: bad field")
			}
			v, vl := protowire.ConsumeBytes(body[tl:])
			if vl < 0 {
				return nil, fmt.Errorf("journal record: bad field %d", num)
			}
			body = body[tl+vl:]
			switch num {
			case 1:
				r.typeURL = string(v)
			case 2:
				m := resources.New(r.typeURL)
				if m == nil {
					return nil, fmt.Errorf("journal record: type %q", r.typeURL)
				}
				if err := proto.Unmarshal(v, m); err != nil {
					return nil, fmt.Errorf("journal record: %w", err)
				}
				r.set = append(r.set, m)
			case 3:
				r.removed = append(r.removed, string(v))
			}
		}
		out = append(out, r)
	}
	return out, nil
}

// replay applies journal records to held resources.
func replay(h held, recs []record) error {
	for _, r := range recs {
		byName := h[r.typeURL]
		if byName == nil {
			return fmt.Errorf("journal record: type %q", r.typeURL)
		}
		for _, name := range r.removed {
			delete(byName, name)
		}
		for _, m := range r.set {
			v, err := versionOf(m)
			if err != nil {
				return err
			}
			byName[resources.NameOf(r.typeURL, m)] = entry{msg: m, version: v}
		}
	}
	return nil
}
