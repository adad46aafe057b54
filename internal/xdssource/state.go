package xdssource

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"iter"
	"os"
	"path/filepath"
	"slices"

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

// held is what a replica holds of every kind but API keys (see
// keyBatch), by type and name, each with its version (as the control
// plane computes it: the SHA-256 of its deterministic encoding).
type held map[string]map[string]entry

type entry struct {
	msg     proto.Message
	version string
	// raw is the deterministic encoding, whose SHA-256 is version; nil
	// once the entry is held (only a change being applied needs it, for
	// the journal).
	raw []byte
}

func versionOf(m proto.Message) (string, error) {
	b, err := cache.MarshalResource(m)
	if err != nil {
		return "", err
	}
	return cache.HashResource(b), nil
}

// encodingOf is the deterministic encoding of a received resource: the
// bytes as received when they are what the control plane hashed into its
// version (Go's default encoding differs only in the order of map
// entries), or encoded afresh.
func encodingOf(m proto.Message, raw []byte, version string) ([]byte, error) {
	sum := sha256.Sum256(raw)
	if hex.EncodeToString(sum[:]) == version {
		return raw, nil
	}
	return proto.MarshalOptions{Deterministic: true}.Marshal(m)
}

// set is what h holds as messages, leaving out the kinds in skip.
func (h held) set(skip ...string) resources.Set {
	s := resources.Set{}
	for t, byName := range h {
		if slices.Contains(skip, t) {
			continue
		}
		s[t] = make(map[string]proto.Message, len(byName))
		for name, e := range byName {
			s[t][name] = e.msg
		}
	}
	return s
}

func (h held) count() int {
	n := 0
	for _, byName := range h {
		n += len(byName)
	}
	return n
}

func (h held) versions(typeURL string) map[string]string {
	out := make(map[string]string, len(h[typeURL]))
	for name, e := range h[typeURL] {
		out[name] = e.version
	}
	return out
}

// decodeHeld reads a state file and its journal records: a
// tollgate.v1.Resources message whose every field is a resource, then the
// changes since. Each resource's version is the SHA-256 of its bytes,
// which were written deterministically, as the control plane encodes
// them: nothing is encoded again to hash it. API keys are left out unless
// withKeys (keyBatch reads them).
func decodeHeld(data []byte, recs []record, withKeys bool) (held, error) {
	h := held{}
	for _, t := range resources.Types {
		h[t] = map[string]entry{}
	}
	put := func(t string, v []byte) error {
		if t == resources.ApiKey && !withKeys {
			return nil
		}
		m := resources.New(t)
		if err := proto.Unmarshal(v, m); err != nil {
			return err
		}
		sum := sha256.Sum256(v)
		h[t][resources.NameOf(t, m)] = entry{msg: m, version: hex.EncodeToString(sum[:])}
		return nil
	}
	if err := eachStateField(data, put); err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	for _, r := range recs {
		if h[r.typeURL] == nil {
			return nil, fmt.Errorf("journal record: type %q", r.typeURL)
		}
		if r.typeURL == resources.ApiKey && !withKeys {
			continue
		}
		for _, name := range r.removed {
			delete(h[r.typeURL], name)
		}
		for raw := range r.set.all() {
			if err := put(r.typeURL, raw); err != nil {
				return nil, fmt.Errorf("journal record: %w", err)
			}
		}
	}
	return h, nil
}

// eachStateField calls fn with every resource of a state file: its type
// and its encoding. Fields this version does not know are skipped.
func eachStateField(data []byte, fn func(typeURL string, v []byte) error) error {
	for len(data) > 0 {
		num, typ, tl := protowire.ConsumeTag(data)
		if tl < 0 || typ != protowire.BytesType {
			return errors.New("not a resources message")
		}
		v, vl := protowire.ConsumeBytes(data[tl:])
		if vl < 0 {
			return errors.New("truncated")
		}
		data = data[tl+vl:]
		t, ok := stateFieldTypes[num]
		if !ok {
			continue // a field this version does not know
		}
		if err := fn(t, v); err != nil {
			return err
		}
	}
	return nil
}

// stateFieldTypes and stateFieldNumbers map the fields of
// tollgate.v1.Resources to the type URLs of their resources.
var stateFieldTypes, stateFieldNumbers = func() (map[protowire.Number]string, map[string]protowire.Number) {
	types, numbers := map[protowire.Number]string{}, map[string]protowire.Number{}
	fields := (&tollgatev1.Resources{}).ProtoReflect().Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if fd.Message() == nil {
			continue
		}
		t := "type.googleapis.com/" + string(fd.Message().FullName())
		if resources.New(t) != nil {
			types[fd.Number()], numbers[t] = t, fd.Number()
		}
	}
	return types, numbers
}()

// stateStore reads and writes one state directory.
type stateStore struct {
	dir   string
	gen   int64 // of the current state file; 0: none yet
	fresh bool  // the next write must be a whole state (a failed write)
	// lost says the files in dir are no base for the next state (they were
	// damaged): it is written from the records since then alone, which
	// then hold everything, since nothing was held before them.
	lost        bool
	stateSize   int64
	journalSize int64
	// Resources in the state and in its journal, to tell when replaying
	// the journal would cost more than rereading a whole state.
	stateCount, journalCount int
}

// load reads the newest state and its journal; no state yet is nil data.
func (s *stateStore) load() ([]byte, []record, error) {
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
	if data == nil {
		data = []byte{} // an empty state is a state
	}
	s.stateSize = int64(len(data))
	n, err := countStateFields(data)
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
		s.journalCount += rec.size()
	}
	return data, recs, nil
}

func countStateFields(data []byte) (n int, err error) {
	err = eachStateField(data, func(string, []byte) error { n++; return nil })
	return n, err
}

// compact writes the current state with pending applied as the next
// generation, and removes the previous one with its journal. The state
// is merged on disk, from the state file, its journal and pending: the
// replica holds no encoding of most of what it serves. Resources
// untouched since the last compaction are copied as they are.
func (s *stateStore) compact(pending []record) error {
	var base []byte
	var recs []record
	if s.gen > 0 && !s.lost {
		var err error
		if base, err = os.ReadFile(filepath.Join(s.dir, fmt.Sprintf(statePattern, s.gen))); err != nil {
			return fmt.Errorf("reading state: %w", err)
		}
		journal, err := os.ReadFile(filepath.Join(s.dir, fmt.Sprintf(journalPattern, s.gen)))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("reading the state journal: %w", err)
		}
		// Past journalSize is what a failed append may have left.
		if recs, err = decodeRecords(journal[:min(int64(len(journal)), s.journalSize)]); err != nil {
			return fmt.Errorf("state journal: %w", err)
		}
	}
	data, n, err := mergeState(base, append(recs, pending...))
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
	s.gen, s.stateSize, s.journalSize, s.fresh, s.lost = next, int64(len(data)), 0, false, false
	s.stateCount, s.journalCount = n, 0
	return nil
}

// mergeState applies records, in order, to a state file's contents and
// returns the new contents with the number of resources in them.
func mergeState(base []byte, recs []record) ([]byte, int, error) {
	inBase := map[string]int{}
	if err := eachStateField(base, func(t string, _ []byte) error { inBase[t]++; return nil }); err != nil {
		return nil, 0, fmt.Errorf("state: %w", err)
	}
	perType := map[string]int{}
	for _, r := range recs {
		if _, ok := stateFieldNumbers[r.typeURL]; !ok {
			return nil, 0, fmt.Errorf("journal record: type %q", r.typeURL)
		}
		perType[r.typeURL]++
	}
	// A kind the base has none of and one record sets (an initial sync) is
	// appended as it is: its names are unique, and there is nothing to
	// replace. Only the others are merged by name.
	direct := func(t string) bool { return inBase[t] == 0 && perType[t] == 1 }
	latest := map[string]map[string][]byte{} // type -> name -> encoding; nil: removed
	size := len(base)
	for _, r := range recs {
		if direct(r.typeURL) {
			size += r.set.fieldsSize()
			continue
		}
		byName := latest[r.typeURL]
		if byName == nil {
			byName = map[string][]byte{}
			latest[r.typeURL] = byName
		}
		for _, name := range r.removed {
			byName[name] = nil
		}
		for raw := range r.set.all() {
			name, err := nameOf(r.typeURL, raw)
			if err != nil {
				return nil, 0, fmt.Errorf("journal record: %w", err)
			}
			byName[name] = raw
		}
	}
	for _, byName := range latest {
		for _, raw := range byName {
			size += fieldSize(raw)
		}
	}
	out := make([]byte, 0, size)
	n := 0
	add := func(t string, raw []byte) {
		out = appendField(out, t, raw)
		n++
	}
	err := eachStateField(base, func(t string, v []byte) error {
		if changed := latest[t]; len(changed) > 0 {
			name, err := nameOf(t, v)
			if err != nil {
				return err
			}
			if _, ok := changed[name]; ok {
				return nil // replaced or removed
			}
		}
		add(t, v)
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("state: %w", err)
	}
	for _, r := range recs {
		if direct(r.typeURL) {
			for raw := range r.set.all() {
				add(r.typeURL, raw)
			}
		}
	}
	// Unordered within a kind, as in a record: a state's order means
	// nothing, and sorting a million names costs seconds.
	for _, t := range resources.Types {
		for _, raw := range latest[t] {
			if raw != nil {
				add(t, raw)
			}
		}
	}
	return out, n, nil
}

// appendField appends a resource of type t to a state file's contents.
func appendField(out []byte, t string, raw []byte) []byte {
	out = protowire.AppendTag(out, stateFieldNumbers[t], protowire.BytesType)
	return protowire.AppendBytes(out, raw)
}

// fieldSize is what appendField adds for raw.
func fieldSize(raw []byte) int {
	return protowire.SizeTag(protowire.MaxValidNumber) + protowire.SizeBytes(len(raw))
}

// nameOf is the name of a resource of type t encoded as raw.
func nameOf(t string, raw []byte) (string, error) {
	if t == resources.ApiKey {
		return keyNameOf(raw)
	}
	m := resources.New(t)
	if err := proto.Unmarshal(raw, m); err != nil {
		return "", err
	}
	return resources.NameOf(t, m), nil
}

// appendRecords journals changes to the current state.
func (s *stateStore) appendRecords(recs []record) error {
	var buf []byte
	for _, r := range recs {
		buf = r.encode(buf)
	}
	f, err := os.OpenFile(filepath.Join(s.dir, fmt.Sprintf(journalPattern, s.gen)), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Write(buf); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	s.journalSize += int64(len(buf))
	for _, r := range recs {
		s.journalCount += r.size()
	}
	return nil
}

// needsCompaction: no state yet, or a journal that would grow, with
// pending more resources, past a quarter of the state.
func (s *stateStore) needsCompaction(pending int) bool {
	return s.gen == 0 || s.fresh || s.lost || s.journalCount+pending > max(s.stateCount/4, 1000)
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

// record is one applied change, as journalled: each resource set as its
// deterministic encoding.
type record struct {
	typeURL string
	set     encodings
	removed []string
}

func (r record) size() int { return r.set.len() + len(r.removed) }

func (r record) encode(dst []byte) []byte {
	var body []byte
	body = protowire.AppendTag(body, 1, protowire.BytesType)
	body = protowire.AppendString(body, r.typeURL)
	for b := range r.set.all() {
		body = protowire.AppendTag(body, 2, protowire.BytesType)
		body = protowire.AppendBytes(body, b)
	}
	for _, name := range r.removed {
		body = protowire.AppendTag(body, 3, protowire.BytesType)
		body = protowire.AppendString(body, name)
	}
	dst = protowire.AppendVarint(dst, uint64(len(body)))
	return append(dst, body...)
}

// encodings are resources' encodings back to back: a million keys are
// then one allocation, not a million.
type encodings struct {
	data []byte
	ends []int // encoding i is data[ends[i-1]:ends[i]]
}

func (e *encodings) add(b []byte) {
	if len(e.data)+len(b) > cap(e.data) {
		e.data = slices.Grow(e.data, max(len(e.data), len(b), 4096))
	}
	e.data = append(e.data, b...)
	e.ends = append(doubled(e.ends), len(e.data))
}

func (e encodings) len() int { return len(e.ends) }

func (e encodings) all() iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		start := 0
		for _, end := range e.ends {
			if !yield(e.data[start:end:end]) {
				return
			}
			start = end
		}
	}
}

// fieldsSize is what appendField adds for all of them.
func (e encodings) fieldsSize() int {
	n := 0
	for b := range e.all() {
		n += fieldSize(b)
	}
	return n
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
				r.set.add(v)
			case 3:
				r.removed = append(r.removed, string(v))
			}
		}
		out = append(out, r)
	}
	return out, nil
}
