package xdssource

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/tollgate/tollgate/internal/keys"
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

// held is what a replica holds of every kind, by type and name, each
// with its version (as the control plane computes it: the SHA-256 of its
// deterministic encoding). API keys are the exception once compiled: a
// million of them as messages would cost several times their compiled
// form, so the client keeps them only in the published snapshot's index,
// with their versions in keyVersions.
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

// takeKeys removes the API keys, once compiled, and returns their
// versions.
func (h held) takeKeys() *keyVersions {
	set := make(map[keys.Digest]string, len(h[resources.ApiKey]))
	for name, e := range h[resources.ApiKey] {
		if d, err := keys.ParseDigest(name); err == nil {
			set[d] = e.version
		}
	}
	h[resources.ApiKey] = map[string]entry{}
	kv := &keyVersions{}
	kv.change(set, nil)
	return kv
}

// keyVersions are the versions of the API keys a replica holds, by
// digest: a sorted array of 64-byte entries for SHA-256 versions (what
// go-control-plane computes; a map of a million keeps up to twice the
// room they need), with recent changes and any other versions in a map
// beside it, folded into the array once there are many.
type keyVersions struct {
	sorted []keyVersion
	recent map[keys.Digest]string // "": removed
	n      int
}

type keyVersion struct {
	digest keys.Digest
	sum    [sha256.Size]byte
}

func compareKeyVersions(a keyVersion, d keys.Digest) int { return bytes.Compare(a.digest[:], d[:]) }

// parseSum reads a lower-case hex SHA-256.
func parseSum(version string) (sum [sha256.Size]byte, ok bool) {
	if len(version) != hex.EncodedLen(len(sum)) || strings.ToLower(version) != version {
		return sum, false
	}
	_, err := hex.Decode(sum[:], []byte(version))
	return sum, err == nil
}

func (v *keyVersions) has(d keys.Digest) bool {
	if s, ok := v.recent[d]; ok {
		return s != ""
	}
	_, ok := slices.BinarySearchFunc(v.sorted, d, compareKeyVersions)
	return ok
}

// change records keys set (with their versions) and removed; a key in
// both is set.
func (v *keyVersions) change(set map[keys.Digest]string, remove []keys.Digest) {
	if len(set)+len(remove)+len(v.recent) > 1024+len(v.sorted)/8 {
		v.rebuild(set, remove)
		return
	}
	if v.recent == nil {
		v.recent = map[keys.Digest]string{}
	}
	for _, d := range remove {
		if _, kept := set[d]; !kept && v.has(d) {
			v.n--
			v.recent[d] = ""
		}
	}
	for d, s := range set {
		if !v.has(d) {
			v.n++
		}
		v.recent[d] = s
	}
}

// rebuild folds the recent changes and these into a new array.
func (v *keyVersions) rebuild(set map[keys.Digest]string, remove []keys.Digest) {
	gone := map[keys.Digest]bool{}
	changed := make([]keyVersion, 0, len(set)+len(v.recent))
	other := map[keys.Digest]string{}
	add := func(d keys.Digest, s string) {
		if sum, ok := parseSum(s); ok {
			changed = append(changed, keyVersion{d, sum})
		} else {
			other[d] = s
		}
	}
	for _, d := range remove {
		if _, kept := set[d]; !kept {
			gone[d] = true
		}
	}
	for d, s := range v.recent {
		if _, over := set[d]; over || gone[d] {
			continue
		}
		if s == "" {
			gone[d] = true
		} else {
			add(d, s)
		}
	}
	for d, s := range set {
		add(d, s)
	}
	slices.SortFunc(changed, func(a, b keyVersion) int { return bytes.Compare(a.digest[:], b.digest[:]) })
	merged := make([]keyVersion, 0, len(v.sorted)+len(changed))
	i := 0
	for _, old := range v.sorted {
		for ; i < len(changed) && compareKeyVersions(changed[i], old.digest) < 0; i++ {
			merged = append(merged, changed[i])
		}
		_, isOther := other[old.digest]
		if gone[old.digest] || isOther || (i < len(changed) && changed[i].digest == old.digest) {
			continue
		}
		merged = append(merged, old)
	}
	merged = append(merged, changed[i:]...)
	v.sorted, v.recent, v.n = merged, other, len(merged)+len(other)
}

func (v *keyVersions) len() int { return v.n }

// byName is every version by resource name, for a reconnect.
func (v *keyVersions) byName() map[string]string {
	out := make(map[string]string, v.n)
	for _, e := range v.sorted {
		if _, changed := v.recent[e.digest]; !changed {
			out[e.digest.String()] = hex.EncodeToString(e.sum[:])
		}
	}
	for d, s := range v.recent {
		if s != "" {
			out[d.String()] = s
		}
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
	err = eachStateField(data, func(t string, v []byte) error {
		m := resources.New(t)
		if err := proto.Unmarshal(v, m); err != nil {
			return err
		}
		sum := sha256.Sum256(v)
		h[t][resources.NameOf(t, m)] = entry{msg: m, version: hex.EncodeToString(sum[:])}
		n++
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	return h, n, nil
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
	if len(base) == 0 && oneRecordPerType(recs) {
		// A first state (an initial sync): nothing to replace, and names
		// are unique within a record.
		return concatRecords(recs)
	}
	latest := map[string]map[string][]byte{} // type -> name -> encoding; nil: removed
	for _, r := range recs {
		if _, ok := stateFieldNumbers[r.typeURL]; !ok {
			return nil, 0, fmt.Errorf("journal record: type %q", r.typeURL)
		}
		byName := latest[r.typeURL]
		if byName == nil {
			byName = map[string][]byte{}
			latest[r.typeURL] = byName
		}
		for _, name := range r.removed {
			byName[name] = nil
		}
		for _, raw := range r.set {
			name, err := nameOf(r.typeURL, raw)
			if err != nil {
				return nil, 0, fmt.Errorf("journal record: %w", err)
			}
			byName[name] = raw
		}
	}
	size := len(base)
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

func oneRecordPerType(recs []record) bool {
	seen := map[string]bool{}
	for _, r := range recs {
		if seen[r.typeURL] {
			return false
		}
		seen[r.typeURL] = true
	}
	return true
}

func concatRecords(recs []record) ([]byte, int, error) {
	size, n := 0, 0
	for _, r := range recs {
		if _, ok := stateFieldNumbers[r.typeURL]; !ok {
			return nil, 0, fmt.Errorf("journal record: type %q", r.typeURL)
		}
		for _, raw := range r.set {
			size += fieldSize(raw)
		}
	}
	out := make([]byte, 0, size)
	for _, r := range recs {
		for _, raw := range r.set {
			out = appendField(out, r.typeURL, raw)
			n++
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

func nameOf(t string, raw []byte) (string, error) {
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
		s.journalCount += len(r.set) + len(r.removed)
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
	set     [][]byte
	removed []string
}

func (r record) encode(dst []byte) []byte {
	var body []byte
	body = protowire.AppendTag(body, 1, protowire.BytesType)
	body = protowire.AppendString(body, r.typeURL)
	for _, b := range r.set {
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
				r.set = append(r.set, v)
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
		for _, raw := range r.set {
			m := resources.New(r.typeURL)
			if err := proto.Unmarshal(raw, m); err != nil {
				return fmt.Errorf("journal record: %w", err)
			}
			sum := sha256.Sum256(raw)
			byName[resources.NameOf(r.typeURL, m)] = entry{msg: m, version: hex.EncodeToString(sum[:])}
		}
	}
	return nil
}
