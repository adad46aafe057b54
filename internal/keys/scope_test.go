package keys

import (
	"slices"
	"testing"
)

func TestParseScopes(t *testing.T) {
	cases := []struct {
		in   string
		want []string // nil with ok false: invalid
		ok   bool
	}{
		{"pets:read pets:write", []string{"pets:read", "pets:write"}, true},
		{"", nil, true},
		{"  a  b ", []string{"a", "b"}, true},
		{"a\u00a0pets:write", nil, false},
		{"a\tpets:write", nil, false},
		{"a\vb", nil, false},
		{"a\nb", nil, false},
		{`a "b"`, nil, false},
		{`a\b`, nil, false},
		{"é", nil, false},
		{"!#$%&'()*+,-./:;<=>?@[]^_`{|}~", []string{"!#$%&'()*+,-./:;<=>?@[]^_`{|}~"}, true},
	}
	for _, tc := range cases {
		got, ok := ParseScopes(tc.in)
		if ok != tc.ok || !slices.Equal(got, tc.want) {
			t.Errorf("ParseScopes(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}
