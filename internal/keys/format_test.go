package keys

import (
	"bytes"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
)

var keyShape = regexp.MustCompile(`^tg_[0-9a-z]{12}_[0-9A-Za-z]{38}$`)

func TestGenerateKey(t *testing.T) {
	a, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	b, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []GeneratedKey{a, b} {
		id, formatted, ok := ParseKey(k.Key)
		if !keyShape.MatchString(k.Key) || !formatted || !ok || id != k.ID || k.ID != k.Key[3:15] || k.Digest != HashAPIKey(k.Key) {
			t.Errorf("key %q (id %q): shape or parse wrong: ParseKey = %q, %v, %v", k.Key, k.ID, id, formatted, ok)
		}
	}
	if a.Key == b.Key || a.ID == b.ID {
		t.Fatalf("two generated keys share a key or an id: %q %q", a.Key, b.Key)
	}
}

// cycle yields 0, 1, ..., 255, 0, 1, ... forever.
type cycle struct{ next byte }

func (c *cycle) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = c.next
		c.next++
	}
	return len(p), nil
}

// repeat yields b forever.
type repeat byte

func (r repeat) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r)
	}
	return len(p), nil
}

func TestGenerateKeyFrom(t *testing.T) {
	zeros := bytes.Repeat([]byte{0}, 44)
	// 248 and above are refused for base62 (252 and above for base36):
	// a source that interleaves them yields the same key as one without.
	interleaved := bytes.Repeat([]byte{255, 0}, 44)
	cases := []struct {
		name    string
		r       io.Reader
		key, id string // "" with an error
	}{
		{"zeros", bytes.NewReader(zeros), "tg_000000000000_000000000000000000000000000000002tCSgW", "000000000000"},
		{"refused bytes are skipped", bytes.NewReader(interleaved), "tg_000000000000_000000000000000000000000000000002tCSgW", "000000000000"},
		{"short source", bytes.NewReader(zeros[:43]), "", ""},
		{"empty source", bytes.NewReader(nil), "", ""},
		{"a source of refused bytes only", repeat(0xff), "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			k, err := GenerateKeyFrom(tc.r)
			if tc.key == "" {
				if err == nil {
					t.Fatalf("got %q, want an error", k.Key)
				}
				return
			}
			if err != nil || k.Key != tc.key || k.ID != tc.id || k.Digest != HashAPIKey(tc.key) {
				t.Fatalf("got %+v, %v; want key %q id %q", k, err, tc.key, tc.id)
			}
		})
	}
}

// TestSamplerUniform: from a source that yields every byte value equally
// often, every character comes out equally often. Taking bytes modulo the
// alphabet's size would make the first 256%size characters likelier.
func TestSamplerUniform(t *testing.T) {
	for _, alphabet := range []string{base36Digits, base62Digits} {
		perCycle := 256 / len(alphabet) // each character per 256 bytes read
		s := sampler{r: &cycle{}}
		out := make([]byte, perCycle*len(alphabet)*3) // three cycles' worth
		if err := s.fill(out, alphabet); err != nil {
			t.Fatal(err)
		}
		for _, c := range []byte(alphabet) {
			if n := bytes.Count(out, []byte{c}); n != 3*perCycle {
				t.Errorf("alphabet of %d: %q drawn %d times, want %d", len(alphabet), c, n, 3*perCycle)
			}
		}
	}
}

func TestParseKey(t *testing.T) {
	valid := "tg_000000000000_000000000000000000000000000000002tCSgW"
	cases := []struct {
		name          string
		in            string
		id            string
		formatted, ok bool
	}{
		{"valid", valid, "000000000000", true, true},
		{"legacy tgk_ key", "tgk_quickstart_mobile_demo_key", "", false, false},
		{"another legacy key", "secret", "", false, false},
		{"empty", "", "", false, false},
		{"the prefix alone", "tg_", "", true, false},
		{"one character short", valid[:len(valid)-1], "", true, false},
		{"one character long", valid + "0", "", true, false},
		{"wrong checksum", valid[:len(valid)-1] + "X", "", true, false},
		{"checksum above 2^32", valid[:keyChecksumAt] + "zzzzzz", "", true, false},
		{"checksum not base62", valid[:len(valid)-1] + "-", "", true, false},
		{"upper case in the id", "tg_00000000000A" + valid[15:], "", true, false},
		{"separator missing", strings.Replace(valid, "0_0", "000", 1), "", true, false},
		{"not base62 in the secret", valid[:20] + "_" + valid[21:], "", true, false},
		{"upper-case prefix", "TG_" + valid[3:], "", false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id, formatted, ok := ParseKey(tc.in)
			if id != tc.id || formatted != tc.formatted || ok != tc.ok {
				t.Fatalf("ParseKey(%q) = %q, %v, %v; want %q, %v, %v", tc.in, id, formatted, ok, tc.id, tc.formatted, tc.ok)
			}
		})
	}
}

func TestKeyChecksum(t *testing.T) {
	cases := []struct {
		in   string
		sum  uint32
		text string
	}{
		{"123456789", 0xcbf43926, "3jZRME"}, // the CRC-32 check value
		{"", 0, "000000"},
	}
	for _, tc := range cases {
		var text [keyChecksumLen]byte
		putChecksum(text[:], keyChecksum(tc.in))
		if got := keyChecksum(tc.in); got != tc.sum || string(text[:]) != tc.text {
			t.Errorf("checksum of %q = %#x %q, want %#x %q", tc.in, got, text, tc.sum, tc.text)
		}
	}
	var most [keyChecksumLen]byte
	if putChecksum(most[:], 0xffffffff); string(most[:]) != "4gfFC3" {
		t.Errorf("largest checksum = %q, want 4gfFC3", most)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 1000 {
		b := make([]byte, rng.IntN(80))
		for i := range b {
			b[i] = byte(rng.UintN(256))
		}
		if got, want := keyChecksum(string(b)), crc32.ChecksumIEEE(b); got != want {
			t.Fatalf("checksum of %x = %#x, hash/crc32 says %#x", b, got, want)
		}
	}
}

func TestKeyID(t *testing.T) {
	cases := []struct {
		in string
		ok bool
	}{
		{"000000000000", true},
		{"zzzzzzzzzzzz", true},
		{"k3y1d0000042", true},
		{"", true}, // no id
		{"00000000000", false},
		{"0000000000000", false},
		{"00000000000A", false},
		{"00000000000_", false},
	}
	for _, tc := range cases {
		id, ok := ParseKeyID(tc.in)
		if ok != tc.ok || ok && id.String() != tc.in || ok != (tc.in == "" || ValidKeyID(tc.in)) {
			t.Errorf("ParseKeyID(%q) = %d (%q), %v; want ok %v and the same text back", tc.in, id, id.String(), ok, tc.ok)
		}
		if ok && (tc.in == "") != (id == 0) {
			t.Errorf("ParseKeyID(%q) = %d: only no id is zero", tc.in, id)
		}
	}
	if got := string(KeyID(0).Append([]byte("x"))); got != "x" {
		t.Errorf("the zero KeyID appends %q", got)
	}
}

// FuzzParseKey: ParseKey never panics and accepts only well-formed keys;
// every generated key parses back to its id; and a key with one character
// substituted is refused, which CRC-32 guarantees (it detects every error
// within 32 bits, and the checksum's text is one-to-one with its value).
func FuzzParseKey(f *testing.F) {
	f.Add([]byte("tg_000000000000_000000000000000000000000000000002tCSgW"), uint8(0), byte('1'))
	f.Add(bytes.Repeat([]byte{7, 200, 31, 250}, 16), uint8(20), byte('a'))
	f.Add([]byte("tgk_quickstart_mobile_demo_key"), uint8(53), byte('0'))
	f.Fuzz(func(t *testing.T, data []byte, pos uint8, c byte) {
		s := string(data)
		id, formatted, ok := ParseKey(s)
		if formatted != strings.HasPrefix(s, KeyPrefix) || !ok && id != "" {
			t.Fatalf("ParseKey(%q) = %q, %v, %v", s, id, formatted, ok)
		}
		if ok {
			var sum [keyChecksumLen]byte
			putChecksum(sum[:], crc32.ChecksumIEEE(data[:keyChecksumAt]))
			if !keyShape.MatchString(s) || id != s[3:15] || string(sum[:]) != s[keyChecksumAt:] {
				t.Fatalf("ParseKey accepted %q (id %q)", s, id)
			}
		}

		k, err := GenerateKeyFrom(bytes.NewReader(data))
		if err != nil {
			return
		}
		if id, formatted, ok := ParseKey(k.Key); !formatted || !ok || id != k.ID || k.Digest != HashAPIKey(k.Key) {
			t.Fatalf("generated %+v; ParseKey = %q, %v, %v", k, id, formatted, ok)
		}
		changed := []byte(k.Key)
		changed[int(pos)%len(changed)] = c
		if string(changed) == k.Key {
			return
		}
		if _, _, ok := ParseKey(string(changed)); ok {
			t.Fatalf("%q, one character off %q, passes the checksum", changed, k.Key)
		}
	})
}

// FuzzParseKeyID: ParseKeyID accepts exactly the valid ids (and no id),
// and an id reads back as the text it was parsed from; every packed value
// in range reads back to itself.
func FuzzParseKeyID(f *testing.F) {
	f.Add("k3y1d0000042", uint64(0))
	f.Add("", uint64(1))
	f.Add("zzzzzzzzzzzz", uint64(1<<63))
	f.Add("K3Y1D0000042", uint64(4738381338321616895))
	f.Fuzz(func(t *testing.T, s string, n uint64) {
		id, ok := ParseKeyID(s)
		if ok != (s == "" || ValidKeyID(s)) || ok && id.String() != s || !ok && id != 0 {
			t.Fatalf("ParseKeyID(%q) = %d (%q), %v", s, id, id.String(), ok)
		}
		const ids = 4738381338321616896 // 36^12
		k := KeyID(n%ids + 1)
		if back, ok := ParseKeyID(k.String()); !ok || back != k {
			t.Fatalf("KeyID %d reads as %q, which parses to %d, %v", k, k.String(), back, ok)
		}
	})
}

// BenchmarkParseKey is what a presented key of the format costs before
// its lookup.
func BenchmarkParseKey(b *testing.B) {
	k, err := GenerateKey()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, ok := ParseKey(k.Key); !ok {
			b.Fatal("refused")
		}
	}
}
