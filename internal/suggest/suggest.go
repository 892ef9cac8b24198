package suggest

import (
	"strings"

	"github.com/spf13/pflag"
)

// maxDistance is how many edits apart a mistyped name may be from the one it suggests.
const maxDistance = 2

// Flag returns a hint such as "did you mean --listen?" for an unknown-flag error of pflag
// ("unknown flag: --listn"), naming the flags of fs closest to the mistyped one; "" when none is
// close or err is not about an unknown flag.
func Flag(fs *pflag.FlagSet, err error) string {
	if err == nil {
		return ""
	}
	name, ok := strings.CutPrefix(err.Error(), "unknown flag: --")
	if !ok {
		return ""
	}
	var names []string
	fs.VisitAll(func(f *pflag.Flag) {
		if !f.Hidden {
			names = append(names, f.Name)
		}
	})
	found := Closest(name, names)
	if len(found) == 0 {
		return ""
	}
	for i := range found {
		found[i] = "--" + found[i]
	}
	return "did you mean " + strings.Join(found, " or ") + "?"
}

// Closest returns the candidates at most maxDistance edits from name, or that start with it,
// closest first (the order of candidates among equals).
func Closest(name string, candidates []string) []string {
	var best []string
	bestD := maxDistance + 1
	for _, c := range candidates {
		d := distance(strings.ToLower(name), strings.ToLower(c))
		if d > maxDistance && len(name) >= 3 && strings.HasPrefix(c, name) {
			d = maxDistance
		}
		switch {
		case d < bestD:
			best, bestD = []string{c}, d
		case d == bestD:
			best = append(best, c)
		}
	}
	return best
}

// distance is the Levenshtein distance between a and b, counting an adjacent swap as one edit.
func distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}
