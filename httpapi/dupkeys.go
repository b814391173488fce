package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// maxDupCheckDepth bounds the nesting the duplicate-key check follows;
// encoding/json refuses deeper bodies anyway.
const maxDupCheckDepth = 64

// duplicateKey returns the path of the first key that appears twice in
// one object of the JSON text buf ("items[0].sku"), or "" when there is
// none or buf is not valid JSON (encoding/json then says what is wrong).
// encoding/json takes the last of repeated keys; a body with two "qty"
// could mean either, so it is refused.
func duplicateKey(buf []byte) string {
	dec := json.NewDecoder(bytes.NewReader(buf))
	dec.UseNumber()
	type frame struct {
		obj  bool
		keys map[string]bool
		name string // path of this value
		idx  int    // arrays: next index
		key  bool   // objects: next token is a key
	}
	var stack []frame
	// valueName names the value about to be read in the top frame and
	// advances it.
	var pendingKey string
	valueName := func() string {
		if len(stack) == 0 {
			return ""
		}
		top := &stack[len(stack)-1]
		if top.obj {
			top.key = true
			if top.name == "" {
				return pendingKey
			}
			return top.name + "." + pendingKey
		}
		n := fmt.Sprintf("%s[%d]", top.name, top.idx)
		top.idx++
		return n
	}
	for {
		tok, err := dec.Token()
		if err != nil {
			return ""
		}
		if len(stack) > 0 && stack[len(stack)-1].obj && stack[len(stack)-1].key {
			if d, ok := tok.(json.Delim); ok && d == '}' {
				stack = stack[:len(stack)-1]
				if len(stack) == 0 {
					return ""
				}
				continue
			}
			k, _ := tok.(string)
			top := &stack[len(stack)-1]
			if top.keys[k] {
				if top.name == "" {
					return k
				}
				return top.name + "." + k
			}
			top.keys[k] = true
			top.key = false
			pendingKey = k
			continue
		}
		switch d := tok.(type) {
		case json.Delim:
			switch d {
			case '{', '[':
				if len(stack) >= maxDupCheckDepth {
					return ""
				}
				name := valueName()
				stack = append(stack, frame{obj: d == '{', keys: map[string]bool{}, name: name, key: d == '{'})
			case ']':
				stack = stack[:len(stack)-1]
				if len(stack) == 0 {
					return ""
				}
			}
		default:
			valueName()
			if len(stack) == 0 {
				return ""
			}
		}
	}
}
