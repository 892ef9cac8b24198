package diff

import (
	"bytes"

	"github.com/vm2image/vm2image/pkg/fsmeta"
)

// compare classifies two entries of the same type other than directories. undecided means the
// contents must be compared by digest (Checksum and Rdiff, regular files of equal size).
func (m *merger) compare(o, n *fsmeta.Entry) (kind Kind, undecided bool) {
	switch n.Type {
	case fsmeta.TypeRegular:
		if o.Size != n.Size {
			return Modified, false
		}
		if m.opts.Strategy == Rsync {
			if seconds(o.MTime) != seconds(n.MTime) {
				return Modified, false
			}
			return m.metaKind(o, n), false
		}
		if n.Size == 0 {
			return m.metaKind(o, n), false
		}
		return "", true
	case fsmeta.TypeSymlink:
		if o.Target != n.Target {
			return Modified, false
		}
	case fsmeta.TypeCharDev, fsmeta.TypeBlockDev:
		if o.DevMajor != n.DevMajor || o.DevMinor != n.DevMinor {
			return Modified, false
		}
	}
	return m.metaKind(o, n), false
}

// metaKind returns Metadata when the entries' metadata differ, "" when not. Modes of symlinks
// mean nothing on Linux. Rsync also compares the mtimes of everything but regular files (whose
// mtimes its quick check has already compared), in whole seconds as rsync does by default.
func (m *merger) metaKind(o, n *fsmeta.Entry) Kind {
	switch {
	case n.Type != fsmeta.TypeSymlink && o.Mode != n.Mode,
		o.UID != n.UID, o.GID != n.GID,
		!sameXattrs(o.Xattrs, n.Xattrs),
		m.opts.Strategy == Rsync && n.Type != fsmeta.TypeRegular && seconds(o.MTime) != seconds(n.MTime):
		return Metadata
	}
	return ""
}

// wantsDelta reports whether Rdiff computes a block delta for a modified file pair.
func (m *merger) wantsDelta(kind Kind, o, n *fsmeta.Entry) bool {
	return m.opts.Strategy == Rdiff && kind == Modified && o.Type == fsmeta.TypeRegular &&
		n.Type == fsmeta.TypeRegular && o.Size > 0 && n.Size >= m.opts.DeltaMinSize
}

func sameXattrs(a, b map[string][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, va := range a {
		vb, ok := b[k]
		if !ok || !bytes.Equal(va, vb) {
			return false
		}
	}
	return true
}

// seconds truncates a nanosecond time to whole seconds, toward negative infinity.
func seconds(ns int64) int64 {
	s := ns / 1e9
	if ns%1e9 < 0 {
		s--
	}
	return s
}
