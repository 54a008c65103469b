package evaluator

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/cloudmedical/pulse/internal/pulse"
)

// PolicyFromYAML turns a policy written in YAML into its JSON document. It reads the subset
// of YAML that a policy needs, without a YAML library: nested block mappings (indented with
// spaces), "key: value" pairs, comments (#), an optional "---" first line, and scalars:
// numbers, true/false, null/~, plain strings and quoted strings (double-quoted with JSON
// escapes, or single-quoted, where two single quotes stand for one). Sequences, flow
// collections other than an empty {}, anchors, tags and multi-line strings are refused with
// EINVALID naming the line: write those policies in JSON.
func PolicyFromYAML(b []byte) ([]byte, error) {
	type frame struct {
		indent int // of the mapping's keys
		m      map[string]any
	}
	root := map[string]any{}
	stack := []frame{{indent: 0, m: root}}
	var open map[string]any // begun by "key:", waiting for its first key to set its indent
	bad := func(line int, format string, args ...any) error {
		return pulse.Errorf(pulse.EINVALID, "policy: YAML line %d: "+format+" (Pulse reads a subset of YAML: block mappings and scalars; write anything else in JSON)", append([]any{line}, args...)...)
	}
	for i, raw := range strings.Split(string(b), "\n") {
		n := i + 1
		line := strings.TrimRight(stripComment(raw), " \t\r")
		if strings.TrimSpace(line) == "" || (n == 1 && strings.TrimSpace(line) == "---") {
			continue
		}
		body := strings.TrimLeft(line, " ")
		indent := len(line) - len(body)
		if strings.HasPrefix(body, "\t") {
			return nil, bad(n, "indented with a tab, want spaces")
		}
		if strings.HasPrefix(body, "- ") || body == "-" {
			return nil, bad(n, "sequences are not supported")
		}
		key, value, ok := cutKey(body)
		if !ok {
			return nil, bad(n, "want \"key: value\" or \"key:\"")
		}
		if open != nil && indent > stack[len(stack)-1].indent {
			stack = append(stack, frame{indent: indent, m: open})
		}
		open = nil // or it stays an empty mapping
		for len(stack) > 1 && indent < stack[len(stack)-1].indent {
			stack = stack[:len(stack)-1]
		}
		top := stack[len(stack)-1]
		if indent != top.indent {
			return nil, bad(n, "indentation %d does not match the mapping's %d", indent, top.indent)
		}
		if _, dup := top.m[key]; dup {
			return nil, bad(n, "key %q appears twice", key)
		}
		if value == "" {
			m := map[string]any{}
			top.m[key] = m
			open = m
			continue
		}
		v, err := scalar(value)
		if err != nil {
			return nil, bad(n, "%v", err)
		}
		top.m[key] = v
	}
	out, err := json.Marshal(root)
	if err != nil {
		return nil, pulse.Errorf(pulse.EINVALID, "policy: YAML: %v", err)
	}
	return out, nil
}

// stripComment drops a comment: a # at the start or after a space, outside quotes.
func stripComment(s string) string {
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == '\\' && quote == '"' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '#' && (i == 0 || s[i-1] == ' ' || s[i-1] == '\t'):
			return s[:i]
		}
	}
	return s
}

var keyPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]*$`)

// cutKey splits "key: value" or "key:" (the key may be quoted).
func cutKey(body string) (key, value string, ok bool) {
	k, v, found := strings.Cut(body, ": ")
	if !found {
		if !strings.HasSuffix(body, ":") {
			return "", "", false
		}
		k, v = strings.TrimSuffix(body, ":"), ""
	}
	k = strings.TrimSpace(k)
	if len(k) >= 2 && (k[0] == '"' && k[len(k)-1] == '"' || k[0] == '\'' && k[len(k)-1] == '\'') {
		k = k[1 : len(k)-1]
	} else if !keyPattern.MatchString(k) {
		return "", "", false
	}
	return k, strings.TrimSpace(v), true
}

var numberPattern = regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$`)

// scalar reads one scalar value.
func scalar(s string) (any, error) {
	switch s {
	case "true", "True", "TRUE":
		return true, nil
	case "false", "False", "FALSE":
		return false, nil
	case "null", "Null", "NULL", "~":
		return nil, nil
	case "{}":
		return map[string]any{}, nil
	}
	switch s[0] {
	case '"':
		var v string
		if err := json.Unmarshal([]byte(s), &v); err != nil {
			return nil, fmt.Errorf("bad double-quoted string %s", s)
		}
		return v, nil
	case '\'':
		if len(s) < 2 || s[len(s)-1] != '\'' {
			return nil, fmt.Errorf("unterminated single-quoted string %s", s)
		}
		inner := s[1 : len(s)-1]
		if strings.Contains(strings.ReplaceAll(inner, "''", ""), "'") {
			return nil, fmt.Errorf("bad single-quoted string %s", s)
		}
		return strings.ReplaceAll(inner, "''", "'"), nil
	case '[', '{', '&', '*', '!', '|', '>', '@', '`', '%':
		return nil, fmt.Errorf("value %s: flow collections, anchors, tags and block strings are not supported", s)
	}
	if numberPattern.MatchString(s) {
		if _, err := strconv.ParseFloat(s, 64); err != nil {
			return nil, fmt.Errorf("number %s is out of range", s)
		}
		return json.Number(s), nil
	}
	return s, nil
}
