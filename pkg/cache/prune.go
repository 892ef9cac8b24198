package cache

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// PruneOptions say what a prune removes.
type PruneOptions struct {
	// OlderThan removes entries not used for longer than this (0: no age limit).
	OlderThan time.Duration
	// MaxSize then removes the least recently used entries, of any kind, until the whole cache
	// holds at most this many bytes (0: no size limit).
	MaxSize int64
	// Now is the time ages are measured from (default time.Now()).
	Now time.Time
}

// Prune removes entries by age, then by size (see PruneOptions), and what dead builds left
// behind. An entry in use (a keyed entry whose lock is held, or a store held by a conversion) is
// never removed. It returns what it removed.
func (r Root) Prune(o PruneOptions) (removed []Entry, err error) {
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	entries, err := r.List()
	if err != nil {
		return nil, err
	}
	var total int64
	for _, e := range entries {
		total += e.Size
	}
	sort.SliceStable(entries, func(i, j int) bool { return entries[i].LastUsed.Before(entries[j].LastUsed) })
	stores := map[string]*Lock{} // store locks, by path: nil when in use
	defer func() {
		for _, l := range stores {
			l.Release()
		}
	}()
	for _, e := range entries {
		old := o.OlderThan > 0 && o.Now.Sub(e.LastUsed) > o.OlderThan
		over := o.MaxSize > 0 && total > o.MaxSize
		if !old && !over {
			continue
		}
		ok, err := r.remove(e, stores)
		if err != nil {
			return removed, err
		}
		if ok {
			total -= e.Size
			removed = append(removed, e)
		}
	}
	for _, k := range Kinds {
		if _, store := storeFiles[k]; !store {
			Dir{Path: r.Path(k)}.cleanTemps()
		}
	}
	r.cleanStoreTemps(stores)
	return removed, nil
}

// remove removes one entry unless it is in use.
func (r Root) remove(e Entry, stores map[string]*Lock) (bool, error) {
	if _, store := storeFiles[e.Kind]; !store {
		return Dir{Path: r.Path(e.Kind)}.remove(e.Key)
	}
	l, held := stores[e.lock]
	if !held {
		var err error
		if l, err = TryLock(e.lock); err != nil {
			return false, err
		}
		stores[e.lock] = l // nil: in use, skip the store
	}
	if l == nil {
		return false, nil
	}
	if err := os.Remove(e.Path); err != nil && !os.IsNotExist(err) {
		return false, err
	}
	return true, nil
}

// cleanStoreTemps removes the temporary files of the stores that nobody holds.
func (r Root) cleanStoreTemps(stores map[string]*Lock) {
	held := func(dir string) bool {
		lock := filepath.Join(dir, StoreLock)
		l, tried := stores[lock]
		if !tried {
			l, _ = TryLock(lock)
			stores[lock] = l
		}
		return l != nil
	}
	if exists(r.Path(Images)) && held(r.Path(Images)) {
		_ = os.RemoveAll(filepath.Join(r.Path(Images), "tmp"))
	}
	for _, dir := range r.archiveDirs() {
		if !held(dir) {
			continue
		}
		des, _ := os.ReadDir(dir)
		for _, de := range des {
			if strings.HasPrefix(de.Name(), ".tmp-") {
				_ = os.Remove(filepath.Join(dir, de.Name()))
			}
		}
	}
}
