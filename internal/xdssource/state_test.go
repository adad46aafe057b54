package xdssource

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/tollgate/tollgate/internal/resources"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

func key(i int) *tollgatev1.ApiKey {
	return &tollgatev1.ApiKey{Application: "shop", Sha256: fmt.Sprintf("%064x", i)}
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
	if err := s.compact(&tollgatev1.Resources{ApiKeys: []*tollgatev1.ApiKey{key(1), key(2)}}); err != nil {
		t.Fatal(err)
	}
	if err := s.appendRecords([]record{
		{typeURL: resources.ApiKey, set: []proto.Message{key(3)}},
		{typeURL: resources.ApiKey, removed: []string{fmt.Sprintf("%064x", 1)}},
	}); err != nil {
		t.Fatal(err)
	}
	journal := filepath.Join(dir, fmt.Sprintf(journalPattern, s.gen))
	f, err := os.OpenFile(journal, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.Write([]byte{0x7f, 0x0a}) // a record cut short
	f.Close()

	names := func(s *stateStore) map[string]bool {
		t.Helper()
		h, recs, err := s.load()
		if err == nil {
			err = replay(h, recs)
		}
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]bool{}
		for name := range h[resources.ApiKey] {
			out[name[len(name)-1:]] = true
		}
		return out
	}
	if got := names(&stateStore{dir: dir}); len(got) != 2 || !got["2"] || !got["3"] {
		t.Fatalf("state with journal holds keys %v, want 2 and 3", got)
	}

	// Compact to generation 2, then put generation 1's journal back.
	saved, err := os.ReadFile(journal)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.compact(&tollgatev1.Resources{ApiKeys: []*tollgatev1.ApiKey{key(1)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(journal); !os.IsNotExist(err) {
		t.Fatal("compaction left the old journal")
	}
	if err := os.WriteFile(journal, saved, 0o600); err != nil {
		t.Fatal(err)
	}
	if got := names(&stateStore{dir: dir}); len(got) != 1 || !got["1"] {
		t.Fatalf("after compaction, keys %v: an old journal was replayed over a newer state", got)
	}
}

// TestStateVersionsMatchTheControlPlanes: the version read from a state
// file's bytes is the one the control plane computes (the hash of the
// resource's deterministic encoding), so a replica restarted from its
// state is sent nothing it already has.
func TestStateVersionsMatchTheControlPlanes(t *testing.T) {
	s := &stateStore{dir: t.TempDir()}
	in := &tollgatev1.Resources{
		Issuers: []*tollgatev1.Issuer{{Name: "idp", Issuer: "https://idp", ClaimHeaders: map[string]string{"email": "x-email", "sub": "x-sub", "a": "x-a"}}},
		Apis: []*tollgatev1.Api{{Id: "orders", Security: []string{"apiKey"}, Hosts: []string{"a", "b"},
			Operations: []*tollgatev1.Operation{{Path: "/x", Methods: []string{"GET"}}, {Path: "/y"}}}},
		ApiKeys: []*tollgatev1.ApiKey{key(1), {Application: "shop", Sha256: fmt.Sprintf("%064x", 2), Scopes: []string{"a", "b"}}},
		Mtls:    &tollgatev1.MtlsSettings{CaFile: "ca.pem"},
	}
	if err := s.compact(in); err != nil {
		t.Fatal(err)
	}
	h, _, err := (&stateStore{dir: s.dir}).load()
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
