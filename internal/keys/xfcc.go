package keys

import (
	"errors"
	"fmt"
	"strings"
)

// Limits on an x-forwarded-client-cert header, so that a hostile one costs
// little to refuse.
const (
	MaxXFCCBytes    = 64 << 10
	MaxXFCCElements = 32
)

// XFCCElement is one element of an x-forwarded-client-cert header: what
// one proxy on the way knew about the client certificate it saw.
type XFCCElement struct {
	By      string   // the proxy's own identity (URI SAN of its certificate)
	Hash    string   // SHA-256 of the client certificate's DER, hex
	Cert    string   // the client certificate, URL-encoded PEM
	Chain   string   // the client certificate chain, URL-encoded PEM
	Subject string   // the client certificate's subject
	URI     []string // URI SANs
	DNS     []string // DNS SANs
}

// ParseXFCC parses Envoy's x-forwarded-client-cert grammar: elements
// separated by commas, each a list of key=value pairs separated by
// semicolons; a value may be double-quoted, and then holds commas,
// semicolons and equals signs literally and \" for a quote. URI and DNS
// may repeat. Keys are matched without regard to case; unknown keys are
// ignored. Elements are returned in header order: the last one was added
// by the nearest proxy.
func ParseXFCC(header string) ([]XFCCElement, error) {
	if len(header) > MaxXFCCBytes {
		return nil, fmt.Errorf("x-forwarded-client-cert is %d bytes, more than %d", len(header), MaxXFCCBytes)
	}
	p := xfccParser{s: header}
	var out []XFCCElement
	for {
		if len(out) == MaxXFCCElements {
			return nil, fmt.Errorf("x-forwarded-client-cert has more than %d elements", MaxXFCCElements)
		}
		el, more, err := p.element()
		if err != nil {
			return nil, err
		}
		out = append(out, el)
		if !more {
			return out, nil
		}
	}
}

type xfccParser struct {
	s string
	i int
}

// element parses key=value pairs up to a comma (more = true) or the end.
func (p *xfccParser) element() (el XFCCElement, more bool, err error) {
	pairs := 0
	for {
		p.skipSpace()
		key, err := p.key()
		if err != nil {
			return el, false, err
		}
		value, err := p.value()
		if err != nil {
			return el, false, fmt.Errorf("x-forwarded-client-cert %s: %w", key, err)
		}
		pairs++
		switch strings.ToLower(key) {
		case "by":
			el.By = value
		case "hash":
			el.Hash = value
		case "cert":
			el.Cert = value
		case "chain":
			el.Chain = value
		case "subject":
			el.Subject = value
		case "uri":
			el.URI = append(el.URI, value)
		case "dns":
			el.DNS = append(el.DNS, value)
		}
		p.skipSpace()
		if p.i == len(p.s) {
			return el, false, nil
		}
		switch p.s[p.i] {
		case ';':
			p.i++
		case ',':
			p.i++
			return el, true, nil
		default:
			return el, false, fmt.Errorf("x-forwarded-client-cert: unexpected %q at %d", p.s[p.i], p.i)
		}
	}
}

func (p *xfccParser) key() (string, error) {
	start := p.i
	for p.i < len(p.s) && p.s[p.i] != '=' {
		c := p.s[p.i]
		if c == ';' || c == ',' || c == '"' {
			break
		}
		p.i++
	}
	key := strings.TrimSpace(p.s[start:p.i])
	if p.i == len(p.s) || p.s[p.i] != '=' || key == "" {
		return "", errors.New("x-forwarded-client-cert: want key=value")
	}
	p.i++ // '='
	return key, nil
}

// value reads a bare value (up to ';' or ',') or a quoted one.
func (p *xfccParser) value() (string, error) {
	if p.i < len(p.s) && p.s[p.i] == '"' {
		p.i++
		var b strings.Builder
		for p.i < len(p.s) {
			c := p.s[p.i]
			switch {
			case c == '\\' && p.i+1 < len(p.s) && p.s[p.i+1] == '"':
				b.WriteByte('"')
				p.i += 2
			case c == '"':
				p.i++
				return b.String(), nil
			default:
				b.WriteByte(c)
				p.i++
			}
		}
		return "", errors.New("unterminated quoted value")
	}
	start := p.i
	for p.i < len(p.s) && p.s[p.i] != ';' && p.s[p.i] != ',' {
		if p.s[p.i] == '"' {
			return "", errors.New("quote inside an unquoted value")
		}
		p.i++
	}
	return strings.TrimSpace(p.s[start:p.i]), nil
}

func (p *xfccParser) skipSpace() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}
