package xdssource

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/protobuf/proto"

	"github.com/tollgate/tollgate/internal/resources"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

func key(i int) *tollgatev1.ApiKey {
	return &tollgatev1.ApiKey{Application: "shop", Sha256: fmt.Sprintf("%064x", i)}
}

func keyName(i int) string { return fmt.Sprintf("%064x", i) }

// setOf is a journal record setting msgs, all of one type, encoded as
// the control plane encodes them.
func setOf(t testing.TB, msgs ...proto.Message) record {
	t.Helper()
	r := record{typeURL: "type.googleapis.com/" + string(msgs[0].ProtoReflect().Descriptor().FullName())}
	for _, m := range msgs {
		b, err := cache.MarshalResource(m)
		if err != nil {
			t.Fatal(err)
		}
		r.set.add(b)
	}
	return r
}

func removed(typeURL string, names ...string) record {
	return record{typeURL: typeURL, removed: names}
}

// readState is everything a state directory holds, API keys included,
// as messages.
func readState(dir string) (held, error) {
	data, recs, err := (&stateStore{dir: dir}).load()
	if err != nil || data == nil {
		return nil, err
	}
	return decodeHeld(data, recs, true)
}

// keysIn loads a state directory and returns the last character of each
// API key's name.
func keysIn(t *testing.T, dir string) map[string]bool {
	t.Helper()
	h, err := readState(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for name := range h[resources.ApiKey] {
		out[name[len(name)-1:]] = true
	}
	return out
}

// TestStateJournal: a compacted state, changes journalled after it, a
// torn last record; then a compaction that leaves the old generation's
// journal behind, as a crash would: it must not be replayed.
func TestStateJournal(t *testing.T) {
	dir := t.TempDir()
	s := &stateStore{dir: dir}
	if !s.needsCompaction(0) {
		t.Fatal("an empty state directory does not need a whole state")
	}
	if err := s.compact([]record{setOf(t, key(1), key(2))}); err != nil {
		t.Fatal(err)
	}
	if err := s.appendRecords([]record{setOf(t, key(3)), removed(resources.ApiKey, keyName(1))}); err != nil {
		t.Fatal(err)
	}
	journal := filepath.Join(dir, fmt.Sprintf(journalPattern, s.gen))
	f, err := os.OpenFile(journal, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.Write([]byte{0x7f, 0x0a}) // a record cut short
	f.Close()
	if got := keysIn(t, dir); len(got) != 2 || !got["2"] || !got["3"] {
		t.Fatalf("state with journal holds keys %v, want 2 and 3", got)
	}

	// Compact to generation 2, then put generation 1's journal back.
	saved, err := os.ReadFile(journal)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.compact([]record{removed(resources.ApiKey, keyName(2), keyName(3)), setOf(t, key(1))}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(journal); !os.IsNotExist(err) {
		t.Fatal("compaction left the old journal")
	}
	if err := os.WriteFile(journal, saved, 0o600); err != nil {
		t.Fatal(err)
	}
	if got := keysIn(t, dir); len(got) != 1 || !got["1"] {
		t.Fatalf("after compaction, keys %v: an old journal was replayed over a newer state", got)
	}
}

// TestStateCompactionMerges: a compaction is the previous state, its
// journal (up to what was written whole) and the pending records, in
// that order; untouched resources are copied byte for byte. A state
// marked lost is no base: only the records count.
func TestStateCompactionMerges(t *testing.T) {
	dir := t.TempDir()
	s := &stateStore{dir: dir}
	app := &tollgatev1.Application{Id: "shop"}
	if err := s.compact([]record{setOf(t, app), setOf(t, key(1), key(2), key(3))}); err != nil {
		t.Fatal(err)
	}
	first, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf(statePattern, s.gen)))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.appendRecords([]record{removed(resources.ApiKey, keyName(2))}); err != nil {
		t.Fatal(err)
	}
	// What a failed append leaves past the journal's known size.
	f, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf(journalPattern, s.gen)), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.Write(removed(resources.ApiKey, keyName(1)).encode(nil))
	f.Close()
	if err := s.compact([]record{setOf(t, key(4)), removed(resources.ApiKey, keyName(4)), setOf(t, key(5))}); err != nil {
		t.Fatal(err)
	}
	if got := keysIn(t, dir); len(got) != 3 || !got["1"] || !got["3"] || !got["5"] {
		t.Fatalf("merged state holds keys %v, want 1, 3 and 5", got)
	}
	if s.stateCount != 4 || s.journalCount != 0 {
		t.Errorf("counted %d resources and %d journalled, want 4 and 0", s.stateCount, s.journalCount)
	}
	second, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf(statePattern, s.gen)))
	if err != nil {
		t.Fatal(err)
	}
	appBytes, _ := cache.MarshalResource(app)
	if !bytes.Contains(first, appBytes) || !bytes.Contains(second, appBytes) {
		t.Error("the untouched application is not copied as it was")
	}

	s.lost = true
	if err := s.compact([]record{setOf(t, key(7))}); err != nil {
		t.Fatal(err)
	}
	if got := keysIn(t, dir); len(got) != 1 || !got["7"] {
		t.Fatalf("a lost state was merged: keys %v, want only 7", got)
	}
}

// TestStateVersionsMatchTheControlPlanes: the version read from a state
// file's bytes is the one the control plane computes (the hash of the
// resource's deterministic encoding), so a replica restarted from its
// state is sent nothing it already has.
func TestStateVersionsMatchTheControlPlanes(t *testing.T) {
	s := &stateStore{dir: t.TempDir()}
	recs := []record{
		setOf(t, &tollgatev1.Issuer{Name: "idp", Issuer: "https://idp", ClaimHeaders: map[string]string{"email": "x-email", "sub": "x-sub", "a": "x-a"}}),
		setOf(t, &tollgatev1.Api{Id: "orders", Security: []string{"apiKey"}, Hosts: []string{"a", "b"},
			Operations: []*tollgatev1.Operation{{Path: "/x", Methods: []string{"GET"}}, {Path: "/y"}}}),
		setOf(t, key(1), &tollgatev1.ApiKey{Application: "shop", Sha256: keyName(2), Scopes: []string{"a", "b"}}),
		setOf(t, &tollgatev1.MtlsSettings{CaFile: "ca.pem"}),
	}
	if err := s.compact(recs); err != nil {
		t.Fatal(err)
	}
	h, err := readState(s.dir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for typ, byName := range h {
		for name, e := range byName {
			want, err := versionOf(e.msg)
			if err != nil {
				t.Fatal(err)
			}
			if e.version != want {
				t.Errorf("%s %q: version %s from the file, %s from the control plane's encoding", resources.ShortName(typ), name, e.version, want)
			}
			n++
		}
	}
	if n != 5 {
		t.Fatalf("%d resources read back, want 5", n)
	}
}

// TestEncodingOfReceivedResources: bytes whose hash is the version are
// journalled as received; others (an encoding with map entries in
// another order) are encoded afresh, deterministically.
func TestEncodingOfReceivedResources(t *testing.T) {
	m := &tollgatev1.Issuer{Name: "idp", ClaimHeaders: map[string]string{"a": "x-a", "b": "x-b", "c": "x-c"}}
	det, _ := cache.MarshalResource(m)
	version := cache.HashResource(det)
	if got, err := encodingOf(m, det, version); err != nil || &got[0] != &det[0] {
		t.Errorf("the control plane's own bytes were not kept (%v)", err)
	}
	if got, err := encodingOf(m, []byte("other"), version); err != nil || !bytes.Equal(got, det) {
		t.Errorf("other bytes: got %x (%v), want the deterministic encoding", got, err)
	}
}
