package diff

import (
	"slices"

	"github.com/vm2image/vm2image/pkg/fsmeta"
)

// finish turns what the merge collected into the Result: hard-link changes, walk order, paths
// the new walk could not read left alone, and the parents and link names a layer needs.
func (m *merger) finish() {
	m.addLinkChanges()
	byPath := func(a, b Change) int { return ComparePaths(a.Path, b.Path) }
	if !slices.IsSortedFunc(m.changes, byPath) {
		slices.SortStableFunc(m.changes, byPath)
	}
	m.leaveUnread()
	links := m.linkNames()
	res := &Result{Changes: m.changes, Problems: m.problems, Links: links, Strategy: m.opts.Strategy}
	res.Parents = m.parents(links)
	m.stats.OldEntries, m.stats.NewEntries = m.old.entries, m.new.entries
	m.stats.NewBytes = m.new.bytes
	m.stats.SocketsSkipped = m.new.sockets
	for _, c := range m.changes {
		m.stats.add(c)
	}
	res.Stats = m.stats
	m.res = res
	m.dirs = nil
}

func (m *merger) result() *Result { return m.res }

// addLinkChanges adds (or upgrades to Modified) the paths whose hard-link group changed.
func (m *merger) addLinkChanges() {
	flagged := m.links.changedLinks()
	if len(flagged) == 0 {
		return
	}
	idx := map[string]int{}
	for i, c := range m.changes {
		if c.New != nil && c.New.Type == fsmeta.TypeRegular {
			idx[c.Path] = i
		}
	}
	for _, r := range flagged {
		i, ok := idx[r.new.Path]
		switch {
		case !ok:
			m.emit(Change{Kind: Modified, Path: r.new.Path, Old: r.old, New: r.new})
		case m.changes[i].Kind == Metadata:
			m.changes[i].Kind = Modified
		}
	}
}

// leaveUnread drops the deletions of paths the new walk could not read (they are problems, and
// a problem path is left as the old tree has it) and keeps such a directory from being opaque.
func (m *merger) leaveUnread() {
	var unread []string
	for _, p := range m.new.res.Problems {
		unread = append(unread, p.Path)
	}
	if len(unread) == 0 {
		return
	}
	inUnread := func(p string) bool {
		for _, u := range unread {
			if p == u || isUnder(p, u) {
				return true
			}
		}
		return false
	}
	out := m.changes[:0]
	for _, c := range m.changes {
		switch {
		case c.Kind == Deleted && inUnread(c.Path):
			continue
		case c.Kind == DirReplaced && inUnread(c.Path):
			if c.Kind = m.metaKind(c.Old, c.New); c.Kind == "" {
				continue
			}
			c.gone, c.goneBytes = 0, 0
		}
		out = append(out, c)
	}
	clear(m.changes[len(out):])
	m.changes = out
}

// linkNames returns the unchanged names of new hard-link groups that have a changed name.
func (m *merger) linkNames() []*fsmeta.Entry {
	groups := m.links.groups()
	if len(groups) == 0 {
		return nil
	}
	changed := map[string]bool{}
	for _, c := range m.changes {
		if hardlinked(c.New) {
			changed[c.Path] = true
		}
	}
	var out []*fsmeta.Entry
	for _, g := range groups {
		if !slices.ContainsFunc(g, func(e *fsmeta.Entry) bool { return changed[e.Path] }) {
			continue
		}
		for _, e := range g {
			if !changed[e.Path] {
				out = append(out, e)
			}
		}
	}
	slices.SortFunc(out, func(a, b *fsmeta.Entry) int { return ComparePaths(a.Path, b.Path) })
	return out
}

// parents returns the new entries of the unchanged directories above changes and link names.
func (m *merger) parents(links []*fsmeta.Entry) []*fsmeta.Entry {
	seen := map[string]bool{}
	var out []*fsmeta.Entry
	up := func(p string) {
		for d := parentOf(p); d != "." && !seen[d]; d = parentOf(d) {
			seen[d] = true
			if e := m.dirs[d]; e != nil && !m.isChange(d) {
				out = append(out, e)
			}
		}
	}
	for _, c := range m.changes {
		up(c.Path)
	}
	for _, e := range links {
		up(e.Path)
	}
	slices.SortFunc(out, func(a, b *fsmeta.Entry) int { return ComparePaths(a.Path, b.Path) })
	return out
}

// isChange reports whether p has a change; m.changes is sorted.
func (m *merger) isChange(p string) bool {
	_, ok := slices.BinarySearchFunc(m.changes, p, func(c Change, p string) int { return ComparePaths(c.Path, p) })
	return ok
}

// add counts a change in the statistics.
func (s *Stats) add(c Change) {
	switch c.Kind {
	case Added:
		s.Added++
		s.AddedBytes += fileSize(c.New)
	case Modified:
		s.Modified++
		s.ModifiedBytes += fileSize(c.New)
	case Metadata:
		s.Metadata++
		s.MetadataBytes += fileSize(c.New)
	case TypeChanged:
		s.TypeChanged++
		s.AddedBytes += fileSize(c.New)
	case DirReplaced:
		s.DirReplaced++
	}
	s.Deleted += c.gone
	s.DeletedBytes += c.goneBytes
	s.DeltaBytes += c.DeltaBytes
}
