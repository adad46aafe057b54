package config

import (
	"bytes"
	"cmp"
)

// PeekAdmin finds the admin listener's address in a config document
// without decoding the rest, so that the admin listener (liveness) can
// open before a large file is parsed. It reads the top-level listen
// block alone; ok is false when that block cannot be read on its own
// (then the admin listener waits for the full load).
func PeekAdmin(data []byte, lookupEnv func(string) (string, bool)) (addr string, ok bool) {
	block, found, readable := topLevelBlock(data, "listen")
	switch {
	case !readable:
		return "", false
	case !found:
		return DefaultAdminAddr, true
	}
	var f struct {
		Listen Listen `yaml:"listen"`
	}
	_, problems, _, err := parse(block, &f, lookupEnv)
	if err != nil || len(problems) > 0 {
		return "", false
	}
	return cmp.Or(f.Listen.Admin, DefaultAdminAddr), true
}

// topLevelBlock returns the lines of a top-level key's block: its line
// and the indented, blank or comment lines after it. A document that
// could hide the key elsewhere (several documents, a flow mapping at the
// top, tabs) is not readable.
func topLevelBlock(data []byte, key string) (block []byte, found, readable bool) {
	var out [][]byte
	in := false
	for line := range bytes.Lines(data) {
		trimmed := bytes.TrimRight(line, "\r\n")
		switch {
		case len(trimmed) == 0 || trimmed[0] == ' ' || trimmed[0] == '#':
			if in {
				out = append(out, line)
			}
			continue
		case bytes.HasPrefix(trimmed, []byte("---")) || trimmed[0] == '{' || trimmed[0] == '\t':
			return nil, false, false
		}
		if bytes.HasPrefix(trimmed, []byte(key+":")) {
			if len(out) > 0 { // repeated: let the full decode report it
				return nil, false, false
			}
			in = true
			out = append(out, line)
			continue
		}
		in = false
	}
	return bytes.Join(out, nil), len(out) > 0, true
}
