package config

import (
	"bytes"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/internal/keys"
	"github.com/tollgate/tollgate/internal/model"
)

// diffFile is a config file as lists of flow mappings, so that a test
// step edits one entry and leaves the rest byte for byte.
type diffFile struct {
	apiName string
	apps    []string
	subs    []string
	keys    []string
}

func (f diffFile) render() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "apis:\n  - {id: pets, name: %s, basePath: /pets, security: [apiKey], operations: [{path: /**}]}\n", f.apiName)
	b.WriteString("  - {id: files, basePath: /files, security: [apiKey], operations: [{path: /**}]}\n")
	for _, l := range []struct {
		kind  string
		items []string
	}{{"applications", f.apps}, {"subscriptions", f.subs}, {"apiKeys", f.keys}} {
		fmt.Fprintf(&b, "%s:\n", l.kind)
		if len(l.items) == 0 {
			b.WriteString("  []\n")
		}
		for _, it := range l.items {
			fmt.Fprintf(&b, "  - %s\n", it)
		}
	}
	return b.Bytes()
}

// diffKey is the entry of plain key "key-n" for app.
func diffKey(n int, app, scopes string) string {
	return fmt.Sprintf("{application: %s, name: k%d, sha256: %s, scopes: [%s]}", app, n, sha256Hex(fmt.Sprintf("key-%d", n)), scopes)
}

func without(list []string, item string) []string {
	return slices.DeleteFunc(slices.Clone(list), func(s string) bool { return s == item })
}

func replaced(list []string, old, new string) []string {
	out := slices.Clone(list)
	out[slices.Index(out, old)] = new
	return out
}

// snapshotsDecideAlike describes how two snapshots would decide
// differently about the keys, applications and subscriptions the steps
// of TestReloadAppliesTheDifference use; "" when they agree.
func snapshotsDecideAlike(got, want *model.Snapshot) string {
	if got.Catalog.API("pets").Name != want.Catalog.API("pets").Name {
		return "the pets API differs"
	}
	if got.APIKeys.Len() != want.APIKeys.Len() {
		return fmt.Sprintf("%d keys, want %d", got.APIKeys.Len(), want.APIKeys.Len())
	}
	keyOf := func(s *model.Snapshot, n int) string {
		k, ok := s.APIKeys.Get(keys.HashAPIKey(fmt.Sprintf("key-%d", n)))
		if !ok {
			return "-"
		}
		return fmt.Sprintf("%s (id %q) of %s scopes %v", k.Name, k.ID, k.AppID, k.Limits)
	}
	for n := range 10 {
		if g, w := keyOf(got, n), keyOf(want, n); g != w {
			return fmt.Sprintf("key-%d: %s, want %s", n, g, w)
		}
	}
	for _, id := range []string{"a0", "a1", "a2", "a3"} {
		appOf := func(s *model.Snapshot) string {
			a := s.Applications[id]
			if a == nil {
				return "-"
			}
			return fmt.Sprintf("%q client %v", a.Name, s.ClientIDs["client-"+id] == a)
		}
		if g, w := appOf(got), appOf(want); g != w {
			return fmt.Sprintf("application %s: %s, want %s", id, g, w)
		}
		for _, api := range []string{"pets", "files"} {
			subOf := func(s *model.Snapshot) string {
				app, a := s.Applications[id], s.Catalog.API(api)
				if app == nil || a == nil {
					return "-"
				}
				if sub := s.Subscription(app, a); sub != nil {
					return sub.State.String()
				}
				return "none"
			}
			if g, w := subOf(got), subOf(want); g != w {
				return fmt.Sprintf("subscription %s/%s: %s, want %s", id, api, g, w)
			}
		}
	}
	return ""
}

// TestReloadAppliesTheDifference reloads a file step by step and checks
// that a change to applications, subscriptions or keys is applied to the
// running snapshot ("applied=difference" in the log) while any other
// change, and a forced reload, compiles the file whole; that every
// snapshot decides as a whole compile of the same file does; and that a
// bad change is refused with its line, whichever way it would have been
// applied.
func TestReloadAppliesTheDifference(t *testing.T) {
	a0, a1 := "{id: a0, name: zero, clientIds: [client-a0]}", "{id: a1, name: one}"
	s0, s1 := "{application: a0, api: pets, state: active}", "{application: a1, api: files, state: active}"
	k0, k1, k2 := diffKey(0, "a0", "read"), diffKey(1, "a1", "read"), diffKey(2, "a0", "")
	file := diffFile{apiName: "v1", apps: []string{a0, a1}, subs: []string{s0, s1}, keys: []string{k0, k1, k2}}

	dir := t.TempDir()
	path := writeConfig(t, dir, "config.yaml", file.render())
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	store := model.NewStore(cfg.Snapshot)
	var log bytes.Buffer
	r := NewReloader(ReloaderOptions{Path: path, Store: store, Running: cfg.Bootstrap, Digest: cfg.Digest, Loaded: cfg,
		Log: slog.New(slog.NewTextHandler(&log, nil))})

	a2 := "{id: a2, name: two, clientIds: [client-a2]}"
	steps := []struct {
		name        string
		edit        func(f diffFile) diffFile
		force       bool
		wantApplied string // "difference" or "whole"; "" for a refused file
		wantProblem string // path of the problem of a refused file
	}{
		{"key added", func(f diffFile) diffFile { f.keys = append(f.keys, diffKey(3, "a1", "")); return f }, false, "difference", ""},
		{"key revoked", func(f diffFile) diffFile { f.keys = without(f.keys, k1); return f }, false, "difference", ""},
		{"key's scopes changed", func(f diffFile) diffFile { f.keys = replaced(f.keys, k0, diffKey(0, "a0", "read, write")); return f }, false, "difference", ""},
		{"key's id set", func(f diffFile) diffFile {
			f.keys = replaced(f.keys, k2, strings.Replace(k2, "name: k2,", "name: k2, id: k3y1d0000042,", 1))
			return f
		}, false, "difference", ""},
		{"subscription blocked", func(f diffFile) diffFile {
			f.subs = replaced(f.subs, s0, strings.Replace(s0, "active", "blocked", 1))
			return f
		}, false, "difference", ""},
		{"subscription removed", func(f diffFile) diffFile { f.subs = without(f.subs, s1); return f }, false, "difference", ""},
		{"application with a key and a subscription added", func(f diffFile) diffFile {
			f.apps = append(f.apps, a2)
			f.subs = append(f.subs, "{application: a2, api: files, state: onHold}")
			f.keys = append(f.keys, diffKey(4, "a2", ""))
			return f
		}, false, "difference", ""},
		{"application renamed", func(f diffFile) diffFile { f.apps = replaced(f.apps, a1, "{id: a1, name: uno}"); return f }, false, "difference", ""},
		{"application removed with its key and subscription", func(f diffFile) diffFile {
			f.apps = f.apps[:2]
			f.subs = f.subs[:len(f.subs)-1]
			f.keys = f.keys[:len(f.keys)-1]
			return f
		}, false, "difference", ""},
		{"API renamed", func(f diffFile) diffFile { f.apiName = "v2"; return f }, false, "whole", ""},
		{"key of an unknown application", func(f diffFile) diffFile { f.keys = append(f.keys, diffKey(5, "a9", "")); return f }, false, "", "apiKeys[3].application"},
		{"key listed twice", func(f diffFile) diffFile { f.keys = append(f.keys, f.keys[0]); return f }, false, "", "apiKeys[3].sha256"},
		{"application removed, its subscription kept", func(f diffFile) diffFile { f.apps = f.apps[1:]; return f }, false, "", "subscriptions[0].application"},
		{"key added after refusals", func(f diffFile) diffFile { f.keys = append(f.keys, diffKey(6, "a0", "")); return f }, false, "difference", ""},
		{"forced", func(f diffFile) diffFile { return f }, true, "whole", ""},
		{"principal pattern added", func(f diffFile) diffFile {
			f.apps = append(f.apps, "{id: a3, principals: [\"spiffe://cluster.local/ns/shop/sa/*\"]}")
			return f
		}, false, "whole", ""},
		{"application added beside a pattern", func(f diffFile) diffFile { f.apps = append(f.apps, a2); return f }, false, "difference", ""},
	}
	beforeWant := cfg.Snapshot // a whole compile of what the store holds
	for _, step := range steps {
		next := step.edit(file)
		data := next.render()
		writeConfig(t, dir, "config.yaml", data)
		before := store.Load()
		log.Reset()
		err := r.Reload(step.force)
		if step.wantApplied == "" {
			ps := problemsOf(t, err)
			if p, ok := findProblem(ps, step.wantProblem, ""); !ok || p.Line == 0 {
				t.Fatalf("%s: problems %v, want one with a line at %s", step.name, ps, step.wantProblem)
			}
			if store.Load() != before {
				t.Fatalf("%s: a refused file replaced the snapshot", step.name)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		file = next
		if !strings.Contains(log.String(), "applied="+step.wantApplied) {
			t.Errorf("%s: log %q, want applied=%s", step.name, log.String(), step.wantApplied)
		}
		got := store.Load()
		want := mustCompile(t, data, noEnv)
		if diff := snapshotsDecideAlike(got, want.Snapshot); diff != "" {
			t.Fatalf("%s: %s", step.name, diff)
		}
		if got.Version != want.Version || got.Held != 0 {
			t.Errorf("%s: version %s held %d, want version %s held 0", step.name, got.Version, got.Held, want.Version)
		}
		if diff := snapshotsDecideAlike(before, beforeWant); diff != "" {
			t.Fatalf("%s changed the snapshot it was applied to: %s", step.name, diff)
		}
		beforeWant = want.Snapshot
	}
}
