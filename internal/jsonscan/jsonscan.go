// Package jsonscan is a small JSON scanner for hot paths that must not decode: Valid checks a
// document as json.Valid does (faster, without allocating), and the walkers find members and
// values inside a document checked already. Asynchronous scoring decodes score requests with
// it, and serving splits request bodies with it.
package jsonscan

// MaxDepth bounds the nesting Valid accepts; deeper documents take the general path
// (encoding/json allows 10000).
const MaxDepth = 512

// Valid reports whether b is one valid JSON value (RFC 8259) with space around it, nested
// at most MaxDepth deep. Whatever it accepts, json.Valid accepts too; strings are not checked
// for valid UTF-8, as json.Valid does not.
func Valid(b []byte) bool {
	i := ValidValue(b, SkipSpace(b, 0))
	return i >= 0 && SkipSpace(b, i) == len(b)
}

// ValidValue checks the value that starts at b[i] and returns the index after it, or -1 when
// it is not valid JSON (or nested deeper than MaxDepth).
func ValidValue(b []byte, i int) int {
	if i < len(b) && b[i] != '{' && b[i] != '[' {
		return validScalar(b, i) // without the stack, which costs its zeroing
	}
	var stack [MaxDepth]byte // '{' or '['
	depth := 0
	for {
		// A value starts at b[i].
		if i >= len(b) {
			return -1
		}
		switch c := b[i]; c {
		case '{', '[':
			if depth == MaxDepth {
				return -1
			}
			stack[depth] = c
			depth++
			i = SkipSpace(b, i+1)
			if i < len(b) && (c == '{' && b[i] == '}' || c == '[' && b[i] == ']') {
				depth--
				i++
				break
			}
			if c == '{' {
				if i = validMemberName(b, i); i < 0 {
					return -1
				}
			}
			continue
		default:
			i = validScalar(b, i)
		}
		if i < 0 {
			return -1
		}
		// After a value: close what ends here, then a ',' and the next value, or the end.
		for {
			if depth == 0 {
				return i
			}
			if i = SkipSpace(b, i); i >= len(b) {
				return -1
			}
			open := stack[depth-1]
			switch {
			case b[i] == ',':
				i = SkipSpace(b, i+1)
				if open == '{' {
					if i = validMemberName(b, i); i < 0 {
						return -1
					}
				}
			case open == '{' && b[i] == '}' || open == '[' && b[i] == ']':
				depth--
				i++
				continue
			default:
				return -1
			}
			break
		}
	}
}

// validScalar checks the string, number, true, false or null at b[i] (inside b) and returns
// the index after it, or -1.
func validScalar(b []byte, i int) int {
	switch b[i] {
	case '"':
		return ValidString(b, i)
	case 't':
		return literal(b, i, "true")
	case 'f':
		return literal(b, i, "false")
	case 'n':
		return literal(b, i, "null")
	}
	return validNumber(b, i)
}

// validMemberName checks a member name and its ':' at b[i] and returns the index of the
// value after it, or -1.
func validMemberName(b []byte, i int) int {
	if i >= len(b) || b[i] != '"' {
		return -1
	}
	if i = ValidString(b, i); i < 0 {
		return -1
	}
	i = SkipSpace(b, i)
	if i >= len(b) || b[i] != ':' {
		return -1
	}
	return SkipSpace(b, i+1)
}

// ValidString checks the string at b[i] (a quote) and returns the index after it, or -1.
func ValidString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		if plain[b[i]] {
			continue
		}
		switch c := b[i]; {
		case c == '"':
			return i + 1
		case c < 0x20:
			return -1
		case c == '\\':
			i++
			if i >= len(b) {
				return -1
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(b) {
					return -1
				}
				for _, h := range b[i+1 : i+5] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return -1
					}
				}
				i += 4
			default:
				return -1
			}
		}
	}
	return -1
}

// plain marks the bytes that a string holds as they are: not a quote, a backslash or a
// control character.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// literal checks that b[i:] starts with word and returns the index after it, or -1.
func literal(b []byte, i int, word string) int {
	if len(b)-i < len(word) || string(b[i:i+len(word)]) != word {
		return -1
	}
	return i + len(word)
}

// validNumber checks the number at b[i] and returns the index after it, or -1.
func validNumber(b []byte, i int) int {
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = Digits(b, i)
	default:
		return -1
	}
	if i < len(b) && b[i] == '.' {
		if j := Digits(b, i+1); j > i+1 {
			i = j
		} else {
			return -1
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := Digits(b, i)
		if j == i {
			return -1
		}
		i = j
	}
	return i
}

func Digits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}

// The helpers below walk JSON that is known to be valid (json.Valid); i is always inside b.

func SkipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// SkipString returns the index after the string that starts at b[i] (a quote), and whether
// it holds escapes.
func SkipString(b []byte, i int) (end int, escaped bool) {
	for i++; ; i++ {
		if plain[b[i]] {
			continue
		}
		switch b[i] {
		case '\\':
			escaped = true
			i++
		case '"':
			return i + 1, escaped
		}
	}
}

// SkipValue returns the index after the value that starts at b[i].
func SkipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		end, _ := SkipString(b, i)
		return end
	case '{', '[':
		depth := 0
		for ; ; i++ {
			switch b[i] {
			case '"':
				end, _ := SkipString(b, i)
				i = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
		}
	default: // a number, true, false or null
		for i < len(b) {
			switch b[i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return i
			}
			i++
		}
		return i
	}
}

// Depth returns the deepest nesting of objects and arrays in valid JSON b: Valid refuses
// what nests deeper than MaxDepth.
func Depth(b []byte) int {
	d, deepest := 0, 0
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '"':
			end, _ := SkipString(b, i)
			i = end - 1
		case '{', '[':
			d++
			deepest = max(deepest, d)
		case '}', ']':
			d--
		}
	}
	return deepest
}
