package keys

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseXFCC(t *testing.T) {
	const hash1 = "468ed33be74eee6556d90c0149c1309e9ba61d6425303443c0748a02dd8de688"
	const hash2 = "9ba61d6425303443c0748a02dd8de688468ed33be74eee6556d90c0149c1309e"
	cases := []struct {
		name   string
		header string
		want   []XFCCElement
	}{
		{
			name:   "one element with a quoted subject",
			header: `By=http://frontend.lyft.com;Hash=` + hash1 + `;Subject="/C=US/ST=CA/L=San Francisco/OU=Lyft/CN=Test Client";URI=http://testclient.lyft.com`,
			want: []XFCCElement{{By: "http://frontend.lyft.com", Hash: hash1,
				Subject: "/C=US/ST=CA/L=San Francisco/OU=Lyft/CN=Test Client", URI: []string{"http://testclient.lyft.com"}}},
		},
		{
			name: "two elements: the client's, then the frontend's",
			header: `By=http://frontend.lyft.com;Hash=` + hash1 + `;URI=http://testclient.lyft.com,` +
				`By=http://backend.lyft.com;Hash=` + hash2 + `;URI=http://frontend.lyft.com`,
			want: []XFCCElement{
				{By: "http://frontend.lyft.com", Hash: hash1, URI: []string{"http://testclient.lyft.com"}},
				{By: "http://backend.lyft.com", Hash: hash2, URI: []string{"http://frontend.lyft.com"}},
			},
		},
		{
			name:   "repeated URI and DNS",
			header: `By=spiffe://cluster.local/ns/shop/sa/api;Hash=` + hash1 + `;URI=spiffe://cluster.local/ns/shop/sa/cart;URI=spiffe://other/x;DNS=lyft.com;DNS=www.lyft.com`,
			want: []XFCCElement{{By: "spiffe://cluster.local/ns/shop/sa/api", Hash: hash1,
				URI: []string{"spiffe://cluster.local/ns/shop/sa/cart", "spiffe://other/x"}, DNS: []string{"lyft.com", "www.lyft.com"}}},
		},
		{
			name:   "quoted commas, semicolons and equals signs",
			header: `Subject="CN=a,O=b;c=d";URI=spiffe://td/x,Subject="CN=second"`,
			want:   []XFCCElement{{Subject: "CN=a,O=b;c=d", URI: []string{"spiffe://td/x"}}, {Subject: "CN=second"}},
		},
		{
			name:   "escaped quotes",
			header: `Subject="CN=\"quoted\" name";By=x`,
			want:   []XFCCElement{{Subject: `CN="quoted" name`, By: "x"}},
		},
		{
			name:   "empty values and unknown keys",
			header: `By=;Hash="";Future=thing;URI=spiffe://td/a`,
			want:   []XFCCElement{{URI: []string{"spiffe://td/a"}}},
		},
		{
			name:   "cert and chain, keys in any case, spaces around separators",
			header: `cert="-----BEGIN%20CERTIFICATE-----%0aMII%0a-----END%20CERTIFICATE-----%0a" ; CHAIN=abc , by=z`,
			want: []XFCCElement{
				{Cert: "-----BEGIN%20CERTIFICATE-----%0aMII%0a-----END%20CERTIFICATE-----%0a", Chain: "abc"},
				{By: "z"},
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseXFCC(tc.header)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestParseXFCCErrors(t *testing.T) {
	for _, bad := range []string{
		"",
		"By",
		"=value",
		`Subject="unterminated`,
		`Subject=a"b`,
		`By=a;;URI=b`,
		`By=a,,By=b`,
		`By=a;URI=b,`,
		`Subject="x"y`,
		strings.Repeat("By=a,", MaxXFCCElements) + "By=a",
		"URI=" + strings.Repeat("a", MaxXFCCBytes),
	} {
		if els, err := ParseXFCC(bad); err == nil {
			t.Errorf("ParseXFCC(%.40q) = %+v, want an error", bad, els)
		}
	}
}

// FuzzParseXFCC: any header parses or fails cleanly, and what parses has
// at least one element, each value free of the quoting it came in.
func FuzzParseXFCC(f *testing.F) {
	for _, s := range []string{
		`By=http://a;Hash=abc;Subject="/C=US/CN=x";URI=spiffe://td/ns/a/sa/b`,
		`By=a;URI=b,By=c;URI=d`, `Subject="a\"b,c;d"`, `x=`, `"`, `a=b;`, `,`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		els, err := ParseXFCC(header)
		if err != nil {
			return
		}
		if len(els) == 0 || len(els) > MaxXFCCElements {
			t.Fatalf("%d elements", len(els))
		}
	})
}
