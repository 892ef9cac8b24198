package diff

import "github.com/vm2image/vm2image/pkg/fsmeta"

// devIno identifies an inode within one tree.
type devIno struct{ dev, ino uint64 }

func keyOf(e *fsmeta.Entry) devIno { return devIno{e.Dev, e.Ino} }

// hardlinked reports whether e is a regular file that other names may share.
func hardlinked(e *fsmeta.Entry) bool {
	return e != nil && e.Type == fsmeta.TypeRegular && e.Nlink > 1
}

// linkRec is a path that is a hard-linked regular file in at least one of the trees. old is nil
// where the path is absent from the old tree or is no regular file there.
type linkRec struct{ old, new *fsmeta.Entry }

// linkTracker keeps the hard-linked paths (few in real trees) for the analysis at the end,
// when both trees' link groups are known.
type linkTracker struct {
	recs []linkRec // in walk order
}

// tracks reports whether a path present in both trees must be recorded.
func (t *linkTracker) tracks(o, n *fsmeta.Entry) bool { return hardlinked(o) || hardlinked(n) }

// record keeps a path whose new entry is a regular file if either side is hard-linked, and
// reports whether it did. o is the old entry, nil if absent.
func (t *linkTracker) record(o, n *fsmeta.Entry) bool {
	if n.Type != fsmeta.TypeRegular || !t.tracks(o, n) {
		return false
	}
	if o != nil && o.Type != fsmeta.TypeRegular {
		o = nil
	}
	t.recs = append(t.recs, linkRec{old: o, new: n})
	return true
}

// changedLinks returns the paths whose hard-link group differs between the trees, the fewest
// that a layer must rewrite for the new groups to appear:
//   - joined: in each group of the new tree, a name other than the first (in walk order) whose
//     old file was not the first name's old file. This is what `rsync -H` itemizes as "hf".
//   - split: of the names of an old group still present, those not in the largest part (by
//     the inode they have in the new tree; of equal parts, the first to reach that size). rsync never
//     breaks a hard link on the receiving side; a layer must, or the image would keep it.
func (t *linkTracker) changedLinks() []linkRec {
	var out []linkRec
	flagged := map[int]bool{}
	leaders := map[devIno]int{}
	for i, r := range t.recs {
		if !hardlinked(r.new) {
			continue
		}
		k := keyOf(r.new)
		l, ok := leaders[k]
		if !ok {
			leaders[k] = i
			continue
		}
		if lo := t.recs[l].old; r.old == nil || lo == nil || keyOf(r.old) != keyOf(lo) {
			flagged[i] = true
		}
	}
	for _, members := range t.oldGroups() {
		for _, i := range t.splitOff(members) {
			flagged[i] = true
		}
	}
	for i, r := range t.recs {
		if flagged[i] {
			out = append(out, r)
		}
	}
	return out
}

// oldGroups returns the indices of recs by the old inode of hard-linked old files.
func (t *linkTracker) oldGroups() map[devIno][]int {
	groups := map[devIno][]int{}
	for i, r := range t.recs {
		if hardlinked(r.old) {
			k := keyOf(r.old)
			groups[k] = append(groups[k], i)
		}
	}
	return groups
}

// splitOff returns the members of one old group that are not in its largest new part.
func (t *linkTracker) splitOff(members []int) []int {
	if len(members) < 2 {
		return nil
	}
	counts := map[devIno]int{}
	var best devIno
	bestN := 0
	for _, i := range members { // members are in walk order: the first part to reach a count wins ties
		k := keyOf(t.recs[i].new)
		counts[k]++
		if counts[k] > bestN {
			best, bestN = k, counts[k]
		}
	}
	var out []int
	for _, i := range members {
		if keyOf(t.recs[i].new) != best {
			out = append(out, i)
		}
	}
	return out
}

// groups returns the new tree's hard-link groups of two names or more, names in walk order.
func (t *linkTracker) groups() [][]*fsmeta.Entry {
	idx := map[devIno]int{}
	var out [][]*fsmeta.Entry
	for _, r := range t.recs {
		if !hardlinked(r.new) {
			continue
		}
		k := keyOf(r.new)
		i, ok := idx[k]
		if !ok {
			i = len(out)
			idx[k] = i
			out = append(out, nil)
		}
		out[i] = append(out[i], r.new)
	}
	n := 0
	for _, g := range out {
		if len(g) > 1 {
			out[n] = g
			n++
		}
	}
	return out[:n]
}
