package wire

import (
	"bytes"
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

// Path is a file path that crosses JSON intact whatever bytes it holds. Paths are byte strings
// and JSON strings are UTF-8, so a path that is not valid UTF-8 is encoded as {"b64": "..."}
// (its bytes in base64) and every other path as a plain string.
type Path string

// Paths is a list of Path.
type Paths []string

type b64Path struct {
	B64 []byte `json:"b64"`
}

// MarshalJSON implements json.Marshaler.
func (p Path) MarshalJSON() ([]byte, error) {
	if utf8.ValidString(string(p)) {
		return json.Marshal(string(p))
	}
	return json.Marshal(b64Path{B64: []byte(p)})
}

// UnmarshalJSON implements json.Unmarshaler.
func (p *Path) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '{' {
		var v b64Path
		if err := json.Unmarshal(b, &v); err != nil {
			return fmt.Errorf("decoding path: %w", err)
		}
		*p = Path(v.B64)
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("decoding path: %w", err)
	}
	*p = Path(s)
	return nil
}

// MarshalJSON implements json.Marshaler.
func (ps Paths) MarshalJSON() ([]byte, error) {
	if ps == nil {
		return []byte("null"), nil
	}
	out := make([]Path, len(ps))
	for i, p := range ps {
		out[i] = Path(p)
	}
	return json.Marshal(out)
}

// UnmarshalJSON implements json.Unmarshaler.
func (ps *Paths) UnmarshalJSON(b []byte) error {
	var in []Path
	if err := json.Unmarshal(b, &in); err != nil {
		return err
	}
	if in == nil {
		*ps = nil
		return nil
	}
	*ps = make(Paths, len(in))
	for i, p := range in {
		(*ps)[i] = string(p)
	}
	return nil
}
