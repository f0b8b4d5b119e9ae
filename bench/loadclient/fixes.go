package main

import (
	"errors"
	"fmt"
)

// fixTimes decodes a delta frame in full and appends each courier's ts (the "ts" member of each object of the
// top-level "couriers" array) to times: what bench/fanout.py's _Fixes decoder (msgspec) takes from one, at a
// fraction of encoding/json's cost. The rest of the frame is parsed too, and skipped; malformed JSON, a
// courier without ts or a ts that is not an integer is an error, as it is for msgspec. (Keys are compared as
// written: a key spelt with escapes is not recognised, which the gateway never sends.)
func fixTimes(b []byte, times []int64) ([]int64, error) {
	start := len(times)
	i := space(b, 0)
	if i >= len(b) || b[i] != '{' {
		return times, fail(b, i, "'{'")
	}
	i = space(b, i+1)
	if i < len(b) && b[i] == '}' {
		return times, end(b, i+1)
	}
	for {
		key, next, err := str(b, i)
		if err != nil {
			return times, err
		}
		if i = space(b, next); i >= len(b) || b[i] != ':' {
			return times, fail(b, i, "':'")
		}
		i = space(b, i+1)
		if string(key) == "couriers" {
			times = times[:start] // a repeated key: the last one counts
			if times, i, err = couriers(b, i, times); err != nil {
				return times, err
			}
		} else if i, err = skip(b, i, 0); err != nil {
			return times, err
		}
		if i = space(b, i); i < len(b) && b[i] == ',' {
			i = space(b, i+1)
			continue
		} else if i < len(b) && b[i] == '}' {
			return times, end(b, i+1)
		}
		return times, fail(b, i, "',' or '}'")
	}
}

var errNoTs = errors.New("a courier without ts")

const maxDepth = 1000

func fail(b []byte, i int, wanted string) error {
	if i >= len(b) {
		return fmt.Errorf("truncated JSON: expected %s at byte %d", wanted, i)
	}
	return fmt.Errorf("malformed JSON: expected %s at byte %d, got %q", wanted, i, b[i])
}

func end(b []byte, i int) error {
	if i = space(b, i); i != len(b) {
		return fail(b, i, "the end")
	}
	return nil
}

func space(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t') {
		i++
	}
	return i
}

// str reads the string at b[i] and returns its raw content (escapes as written) and the index after it.
func str(b []byte, i int) ([]byte, int, error) {
	if i >= len(b) || b[i] != '"' {
		return nil, i, fail(b, i, `'"'`)
	}
	start := i + 1
	for i = start; i < len(b); i++ {
		if c := b[i]; stringByte[c] {
			continue
		} else if c == '"' {
			return b[start:i], i + 1, nil
		} else if c == '\\' {
			i++
		} else {
			return nil, i, fail(b, i, "no control character in a string")
		}
	}
	return nil, len(b), fail(b, len(b), `'"'`)
}

// stringByte: the bytes that stand for themselves in a JSON string.
var stringByte = func() (table [256]bool) {
	for c := 0x20; c < 256; c++ {
		table[c] = c != '"' && c != '\\'
	}
	return table
}()

func couriers(b []byte, i int, times []int64) ([]int64, int, error) {
	if i >= len(b) || b[i] != '[' {
		return times, i, fail(b, i, "'['")
	}
	i = space(b, i+1)
	if i < len(b) && b[i] == ']' {
		return times, i + 1, nil
	}
	for {
		ts, next, err := courier(b, i)
		if err != nil {
			return times, next, err
		}
		times = append(times, ts)
		if i = space(b, next); i < len(b) && b[i] == ',' {
			i = space(b, i+1)
			continue
		} else if i < len(b) && b[i] == ']' {
			return times, i + 1, nil
		}
		return times, i, fail(b, i, "',' or ']'")
	}
}

// courier reads the courier's object at b[i] and returns its ts and the index after it. (The gateway writes no
// white space: each step looks for it only where the next byte is not the one expected.)
func courier(b []byte, i int) (int64, int, error) {
	if i >= len(b) || b[i] != '{' {
		return 0, i, fail(b, i, "'{'")
	}
	var ts int64
	found := false
	if i = space(b, i+1); i < len(b) && b[i] == '}' {
		return 0, i, errNoTs
	}
	for {
		key, next, err := str(b, i)
		if err != nil {
			return 0, next, err
		}
		if i = next; i >= len(b) || b[i] != ':' {
			if i = space(b, i); i >= len(b) || b[i] != ':' {
				return 0, i, fail(b, i, "':'")
			}
		}
		if i++; i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t') {
			i = space(b, i)
		}
		if len(key) == 2 && key[0] == 't' && key[1] == 's' {
			if ts, i, err = integer(b, i); err != nil {
				return 0, i, err
			}
			found = true
		} else if i, err = skip(b, i, 1); err != nil {
			return 0, i, err
		}
		if i < len(b) && b[i] != ',' && b[i] != '}' {
			i = space(b, i)
		}
		if i < len(b) && b[i] == ',' {
			if i++; i < len(b) && b[i] != '"' {
				i = space(b, i)
			}
			continue
		} else if i < len(b) && b[i] == '}' {
			if !found {
				return 0, i, errNoTs
			}
			return ts, i + 1, nil
		}
		return 0, i, fail(b, i, "',' or '}'")
	}
}

// integer reads a JSON integer that fits an int64 (not 1.0, not 1e3: msgspec's int refuses them too).
func integer(b []byte, i int) (int64, int, error) {
	start := i
	negative := i < len(b) && b[i] == '-'
	if negative {
		i++
	}
	digits := i
	var value uint64
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		if value > (1<<63)/10 {
			return 0, i, fmt.Errorf("ts out of range at byte %d", start)
		}
		value = value*10 + uint64(b[i]-'0')
	}
	if i == digits || (i-digits > 1 && b[digits] == '0') || (i < len(b) && (b[i] == '.' || b[i] == 'e' || b[i] == 'E')) {
		return 0, i, fmt.Errorf("ts is not an integer at byte %d", start)
	}
	switch {
	case negative && value <= 1<<63:
		return -int64(value), i, nil
	case !negative && value <= 1<<63-1:
		return int64(value), i, nil
	}
	return 0, i, fmt.Errorf("ts out of range at byte %d", start)
}

var numberByte = func() (table [256]bool) {
	for _, c := range []byte("0123456789+-.eE") {
		table[c] = true
	}
	return table
}()

// skip reads the value of any kind at b[i] and returns the index after it.
func skip(b []byte, i int, depth int) (int, error) {
	if i >= len(b) {
		return i, fail(b, i, "a value")
	}
	switch c := b[i]; {
	case c == '"':
		_, next, err := str(b, i)
		return next, err
	case c == '-' || (c >= '0' && c <= '9'):
		start := i
		for i++; i < len(b) && numberByte[b[i]]; i++ {
		}
		if c == '-' && i == start+1 {
			return i, fail(b, i, "a digit")
		}
		return i, nil
	case c == 'n' && len(b)-i >= 4 && string(b[i:i+4]) == "null",
		c == 't' && len(b)-i >= 4 && string(b[i:i+4]) == "true":
		return i + 4, nil
	case c == 'f' && len(b)-i >= 5 && string(b[i:i+5]) == "false":
		return i + 5, nil
	case c == '{' || c == '[':
		if depth >= maxDepth {
			return i, errors.New("JSON nested too deep")
		}
		closing := byte('}')
		if c == '[' {
			closing = ']'
		}
		i = space(b, i+1)
		if i < len(b) && b[i] == closing {
			return i + 1, nil
		}
		for {
			var err error
			if c == '{' {
				if _, i, err = str(b, i); err != nil {
					return i, err
				}
				if i = space(b, i); i >= len(b) || b[i] != ':' {
					return i, fail(b, i, "':'")
				}
				i = space(b, i+1)
			}
			if i, err = skip(b, i, depth+1); err != nil {
				return i, err
			}
			if i = space(b, i); i < len(b) && b[i] == ',' {
				i = space(b, i+1)
				continue
			} else if i < len(b) && b[i] == closing {
				return i + 1, nil
			}
			return i, fail(b, i, fmt.Sprintf("',' or %q", closing))
		}
	}
	return i, fail(b, i, "a value")
}
