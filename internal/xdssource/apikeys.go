package xdssource

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strings"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/tollgate/tollgate/internal/catalog"
	"github.com/tollgate/tollgate/internal/keys"
	"github.com/tollgate/tollgate/internal/model"
	"github.com/tollgate/tollgate/internal/resources"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

// API keys are the one kind a replica may hold millions of, so it keeps
// none of them as a message. Each key is compiled as it arrives, from the
// pieces of a response or from a state file, into a keyBatch; once the
// batch is applied, a key lives only in the published snapshot's index,
// and its version in keyVersions.

// keyBatch is a change of API keys, compiled as it arrives.
type keyBatch struct {
	apps    map[string]*catalog.Application // what keys are compiled against
	set     []keys.Entry                    // in arrival order, with their SHA-256 versions: a later entry replaces an earlier one
	other   map[keys.Digest]string          // set's versions that are no SHA-256
	removed []keys.Digest
	journal encodings         // set's deterministic encodings, for the state journal
	msg     tollgatev1.ApiKey // reused to decode each key
}

func newKeyBatch(apps map[string]*catalog.Application) *keyBatch {
	return &keyBatch{apps: apps, other: map[keys.Digest]string{}}
}

func (b *keyBatch) size() int { return len(b.set) + len(b.removed) }

// add takes in a response's keys; it reports the first key that is not
// valid.
func (b *keyBatch) add(resp *discovery.DeltaDiscoveryResponse) error {
	for _, r := range resp.GetResources() {
		if got := r.GetResource().GetTypeUrl(); got != resources.ApiKey {
			return fmt.Errorf("ApiKey %q: the response is for %s but the resource is a %s", r.GetName(), resources.ApiKey, got)
		}
		if err := b.received(r.GetName(), r.GetVersion(), r.GetResource().GetValue()); err != nil {
			return fmt.Errorf("ApiKey %q: %w", r.GetName(), err)
		}
	}
	for _, name := range resp.GetRemovedResources() {
		// A name that is no digest names no key this replica can hold.
		if d, ok := digestOf(name); ok {
			b.removed = append(b.removed, d)
		}
	}
	return nil
}

// received compiles one key sent under name with version.
func (b *keyBatch) received(name, version string, raw []byte) error {
	e, err := b.compile(raw)
	if err != nil {
		return err
	}
	if d, ok := digestOf(name); !ok || d != e.Digest {
		return fmt.Errorf("a resource with these contents is named %q", strings.ToLower(b.msg.GetSha256()))
	}
	// Journalled as received when these are the bytes the control plane
	// hashed into its version, as they are from go-control-plane.
	sum, isSum := parseSum(version)
	if !isSum || sum != sha256.Sum256(raw) {
		raw, err = proto.MarshalOptions{Deterministic: true}.Marshal(&b.msg)
		if err != nil {
			return err
		}
	}
	b.journal.add(raw)
	b.keep(e, version, sum, isSum)
	return nil
}

// stored compiles one key read from a state file, whose version is the
// SHA-256 of its bytes there.
func (b *keyBatch) stored(raw []byte) error {
	e, err := b.compile(raw)
	if err != nil {
		return err
	}
	b.keep(e, "", sha256.Sum256(raw), true)
	return nil
}

func (b *keyBatch) compile(raw []byte) (keys.Entry, error) {
	if err := proto.Unmarshal(raw, &b.msg); err != nil {
		return keys.Entry{}, err
	}
	e, problems := model.CompileAPIKey(&b.msg, b.apps)
	if len(problems) > 0 {
		msgs := make([]string, 0, len(problems))
		for _, p := range problems {
			msgs = append(msgs, p.Path+": "+p.Msg)
		}
		return keys.Entry{}, fmt.Errorf("%s", strings.Join(msgs, "; "))
	}
	return e, nil
}

func (b *keyBatch) keep(e keys.Entry, version string, sum [sha256.Size]byte, isSum bool) {
	if isSum {
		e.Version = sum
		delete(b.other, e.Digest)
	} else {
		b.other[e.Digest] = version
	}
	b.set = append(doubled(b.set), e)
}

// doubled is s with room for as many again when it is full: append grows
// large slices by a quarter, which copies a million keys over and over.
func doubled[T any](s []T) []T {
	if len(s) < cap(s) {
		return s
	}
	return slices.Grow(s, max(len(s), 256))
}

// record is the batch as a journal record.
func (b *keyBatch) record() record {
	r := record{typeURL: resources.ApiKey, set: b.journal, removed: make([]string, len(b.removed))}
	for i, d := range b.removed {
		r.removed[i] = d.String()
	}
	return r
}

// digestOf reads a key's resource name: its SHA-256 in lower-case hex.
func digestOf(name string) (d keys.Digest, ok bool) {
	return d, decodeLowerHex(d[:], name)
}

// parseSum reads a version that is a lower-case hex SHA-256.
func parseSum(version string) (sum [sha256.Size]byte, ok bool) {
	return sum, decodeLowerHex(sum[:], version)
}

// decodeLowerHex decodes s, exactly len(dst) bytes in lower-case hex,
// into dst (a name in upper case is not the name the control plane
// gives). It allocates nothing: it runs for every key received.
func decodeLowerHex(dst []byte, s string) bool {
	if len(s) != 2*len(dst) {
		return false
	}
	for i := range dst {
		hi, lo := lowerHexDigits[s[2*i]], lowerHexDigits[s[2*i+1]]
		if hi|lo > 0xf {
			return false
		}
		dst[i] = hi<<4 | lo
	}
	return true
}

// lowerHexDigits maps a lower-case hex digit to its value, anything else
// to 0xff.
var lowerHexDigits = func() (t [256]byte) {
	for c := range t {
		switch {
		case '0' <= c && c <= '9':
			t[c] = byte(c - '0')
		case 'a' <= c && c <= 'f':
			t[c] = byte(c - 'a' + 10)
		default:
			t[c] = 0xff
		}
	}
	return t
}()

// otherKeyVersions are the versions of held keys that are not SHA-256s
// (a control plane may send any version); the index keeps the others
// beside each key.
type otherKeyVersions map[keys.Digest]string

// change follows an applied batch.
func (o otherKeyVersions) change(b *keyBatch) {
	if len(o) > 0 {
		for _, e := range b.set {
			delete(o, e.Digest)
		}
	}
	maps.Copy(o, b.other)
	for _, d := range b.removed {
		delete(o, d)
	}
}

// keyVersionsByName is every held key's version by resource name, for a
// reconnect.
func keyVersionsByName(x *keys.APIKeyIndex, other otherKeyVersions) map[string]string {
	out := make(map[string]string, x.Len())
	for d, v := range x.Versions() {
		if s, ok := other[d]; ok {
			out[d.String()] = s
		} else if v != (keys.Version{}) {
			out[d.String()] = hex.EncodeToString(v[:])
		}
	}
	return out
}

// keyNameOf is the name of an encoded key, read without decoding the
// rest of it: a state merged on disk names a million keys this way.
func keyNameOf(raw []byte) (string, error) {
	var sha string
	for len(raw) > 0 {
		num, typ, n := protowire.ConsumeTag(raw)
		if n < 0 {
			return "", protowire.ParseError(n)
		}
		raw = raw[n:]
		if num == apiKeySha256Field && typ == protowire.BytesType {
			v, n := protowire.ConsumeString(raw)
			if n < 0 {
				return "", protowire.ParseError(n)
			}
			sha, raw = v, raw[n:] // the last one counts, as in a decode
			continue
		}
		if n = protowire.ConsumeFieldValue(num, typ, raw); n < 0 {
			return "", protowire.ParseError(n)
		}
		raw = raw[n:]
	}
	return strings.ToLower(sha), nil
}

var apiKeySha256Field = (&tollgatev1.ApiKey{}).ProtoReflect().Descriptor().Fields().ByName("sha256").Number()
