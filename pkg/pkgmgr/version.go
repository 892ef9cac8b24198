package pkgmgr

import (
	"strings"
)

// CompareVersions compares two versions of a package by the rules of m's own tool and returns
// -1, 0 or 1 as a is older than, the same as, or newer than b. An unknown manager compares the
// strings bytewise.
func CompareVersions(m Manager, a, b string) int {
	switch m {
	case Dpkg:
		return CompareDebian(a, b)
	case RPM:
		return CompareRPM(a, b)
	case APK:
		return CompareAPK(a, b)
	case Pacman:
		return ComparePacman(a, b)
	}
	return strings.Compare(a, b)
}

// The version comparisons below mirror C code that reads NUL-terminated strings, ASCII-only
// character classes and reads the byte after the end as NUL; these helpers do the same.

// cString cuts s at its first NUL byte, as C sees it.
func cString(s string) string {
	if i := strings.IndexByte(s, 0); i >= 0 {
		return s[:i]
	}
	return s
}

// byteAt returns s[i], or 0 past the end.
func byteAt(s string, i int) byte {
	if i < len(s) {
		return s[i]
	}
	return 0
}

func isDigitByte(c byte) bool { return c >= '0' && c <= '9' }
func isAlphaByte(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isAlnumByte(c byte) bool { return isDigitByte(c) || isAlphaByte(c) }

// sign folds any integer to -1, 0 or 1.
func sign(n int) int {
	switch {
	case n < 0:
		return -1
	case n > 0:
		return 1
	}
	return 0
}

// compareDigitRuns compares two runs of decimal digits as numbers of any length.
func compareDigitRuns(a, b string) int {
	a, b = strings.TrimLeft(a, "0"), strings.TrimLeft(b, "0")
	if len(a) != len(b) {
		return sign(len(a) - len(b))
	}
	return strings.Compare(a, b)
}

// CompareDebian compares two Debian versions "[epoch:]upstream[-revision]" as
// `dpkg --compare-versions` does (deb-version(7)): epochs as numbers, then upstream versions,
// then revisions, each split into alternating runs of non-digits and digits. Non-digit runs
// compare character by character with '~' before everything (even the end of the string),
// then the end, then letters, then every other character; digit runs compare as numbers.
// A version dpkg would refuse (a non-numeric epoch) reads as epoch 0 and all upstream.
func CompareDebian(a, b string) int {
	ea, ua, ra := splitDebian(a)
	eb, ub, rb := splitDebian(b)
	if c := compareDigitRuns(ea, eb); c != 0 {
		return c
	}
	if c := debianRuns(ua, ub); c != 0 {
		return c
	}
	return debianRuns(ra, rb)
}

// splitDebian splits a version as dpkg's parseversion does: the epoch before the first colon,
// the revision after the last hyphen.
func splitDebian(v string) (epoch, upstream, revision string) {
	v = strings.Trim(cString(v), " \t")
	epoch = "0"
	if e, rest, ok := strings.Cut(v, ":"); ok && e != "" && strings.Trim(e, "0123456789") == "" {
		epoch, v = e, rest
	}
	if i := strings.LastIndexByte(v, '-'); i >= 0 {
		return epoch, v[:i], v[i+1:]
	}
	return epoch, v, ""
}

// debianOrder is the weight of one character in a non-digit run; 0 is both the end of the
// string and a digit (the start of the next run).
func debianOrder(c byte) int {
	switch {
	case isDigitByte(c) || c == 0:
		return 0
	case isAlphaByte(c):
		return int(c)
	case c == '~':
		return -1
	}
	return int(c) + 256
}

// debianRuns is dpkg's verrevcmp.
func debianRuns(a, b string) int {
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		for (i < len(a) && !isDigitByte(a[i])) || (j < len(b) && !isDigitByte(b[j])) {
			ac, bc := debianOrder(byteAt(a, i)), debianOrder(byteAt(b, j))
			if ac != bc {
				return sign(ac - bc)
			}
			i, j = i+1, j+1
		}
		si, sj := i, j
		for i < len(a) && isDigitByte(a[i]) {
			i++
		}
		for j < len(b) && isDigitByte(b[j]) {
			j++
		}
		if c := compareDigitRuns(a[si:i], b[sj:j]); c != 0 {
			return c
		}
	}
	return 0
}

// CompareRPM compares two rpm versions "[epoch:]version[-release]" as rpm's own rpmverCmp does
// (what `rpm.vercmp` prints in rpm's Lua): a missing epoch is 0; epochs, versions and releases
// compare with rpmvercmp; a version with a release is newer than the same version without one.
// rpmvercmp splits a string into runs of digits and runs of letters, skipping every other
// character; digit runs compare as numbers and beat letter runs; '~' sorts before everything,
// even the end of the string; '^' sorts after the end of the string but before anything else.
func CompareRPM(a, b string) int {
	c, ra, hasRA, rb, hasRB := compareEV(a, b, rpmvercmp)
	if c != 0 {
		return c
	}
	switch {
	case hasRA && hasRB:
		return rpmvercmp(ra, rb)
	case hasRA:
		return 1
	case hasRB:
		return -1
	}
	return 0
}

// splitEVR splits "[epoch:]version[-release]" as rpm and libalpm do: the epoch is a run of
// leading digits ended by a colon ("" when absent or empty), the release follows the last
// hyphen.
func splitEVR(s string) (epoch, version, release string, hasRelease bool) {
	k := 0
	for k < len(s) && isDigitByte(s[k]) {
		k++
	}
	end := len(s)
	if i := strings.LastIndexByte(s[k:], '-'); i >= 0 {
		end = k + i
		release, hasRelease = s[end+1:], true
	}
	if k < len(s) && s[k] == ':' {
		return s[:k], s[k+1 : end], release, hasRelease
	}
	return "", s[:end], release, hasRelease
}

// rpmvercmp is rpm's segment comparison (rpmio/rpmvercmp.c in rpm 4.18).
func rpmvercmp(a, b string) int {
	if a == b {
		return 0
	}
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		i = skipRPMSeparators(a, i)
		j = skipRPMSeparators(b, j)
		ca, cb := byteAt(a, i), byteAt(b, j)
		if ca == '~' || cb == '~' {
			if ca != '~' {
				return 1
			}
			if cb != '~' {
				return -1
			}
			i, j = i+1, j+1
			continue
		}
		if ca == '^' || cb == '^' {
			switch {
			case i == len(a):
				return -1
			case j == len(b):
				return 1
			case ca != '^':
				return 1
			case cb != '^':
				return -1
			}
			i, j = i+1, j+1
			continue
		}
		if i == len(a) || j == len(b) {
			break
		}
		var c int
		if i, j, c = compareSegment(a, b, i, j); c != 0 {
			return c
		}
	}
	switch {
	case i >= len(a) && j >= len(b):
		return 0
	case i < len(a):
		return 1
	}
	return -1
}

func skipRPMSeparators(s string, i int) int {
	for i < len(s) && !isAlnumByte(s[i]) && s[i] != '~' && s[i] != '^' {
		i++
	}
	return i
}

// compareSegment compares the segments that start at a[i] and b[j], the kind (digits or
// letters) chosen by a[i], as rpmvercmp and libalpm's copy of it do, and returns where both
// segments end.
func compareSegment(a, b string, i, j int) (int, int, int) {
	class := isAlphaByte
	isNum := isDigitByte(a[i])
	if isNum {
		class = isDigitByte
	}
	si, sj := i, j
	for i < len(a) && class(a[i]) {
		i++
	}
	for j < len(b) && class(b[j]) {
		j++
	}
	segA, segB := a[si:i], b[sj:j]
	switch {
	case segB == "" && isNum: // a number is newer than letters
		return i, j, 1
	case segB == "":
		return i, j, -1
	case isNum:
		return i, j, compareDigitRuns(segA, segB)
	}
	return i, j, strings.Compare(segA, segB)
}

// ComparePacman compares two pacman versions "[epoch:]pkgver[-pkgrel]" as libalpm's
// alpm_pkg_vercmp (pacman's vercmp tool) does: a missing epoch is 0; epochs, versions and
// pkgrels compare with libalpm's rpmvercmp, the pkgrel only when both versions have one.
// Unlike rpm's, libalpm's rpmvercmp knows no '~' or '^', orders by the number of separator
// characters between segments, and lets no leftover letters beat the end of a version
// ("1.0a" < "1.0").
func ComparePacman(a, b string) int {
	c, ra, hasRA, rb, hasRB := compareEV(a, b, alpmVercmp)
	if c != 0 || !hasRA || !hasRB {
		return c
	}
	return alpmVercmp(ra, rb)
}

// compareEV compares the epochs (missing = 0), then the versions of two "[epoch:]version
// [-release]" strings with cmp, and returns the releases for the caller's own release rule.
// Equal strings compare equal with no releases returned.
func compareEV(a, b string, cmp func(x, y string) int) (c int, ra string, hasRA bool, rb string, hasRB bool) {
	a, b = cString(a), cString(b)
	if a == b {
		return 0, "", false, "", false
	}
	ea, va, ra, hasRA := splitEVR(a)
	eb, vb, rb, hasRB := splitEVR(b)
	if c := cmp(cmp0(ea), cmp0(eb)); c != 0 {
		return c, ra, hasRA, rb, hasRB
	}
	return cmp(va, vb), ra, hasRA, rb, hasRB
}

// cmp0 is an epoch with "" read as "0".
func cmp0(e string) string {
	if e == "" {
		return "0"
	}
	return e
}

// alpmVercmp is libalpm's rpmvercmp (lib/libalpm/version.c in pacman 6).
func alpmVercmp(a, b string) int {
	if a == b {
		return 0
	}
	i, j := 0, 0   // start of the next segment
	pi, pj := 0, 0 // end of the previous segment
	for i < len(a) && j < len(b) {
		for i < len(a) && !isAlnumByte(a[i]) {
			i++
		}
		for j < len(b) && !isAlnumByte(b[j]) {
			j++
		}
		if i == len(a) || j == len(b) {
			break
		}
		if i-pi != j-pj { // more separators: newer
			return sign((i - pi) - (j - pj))
		}
		var c int
		if pi, pj, c = compareSegment(a, b, i, j); c != 0 {
			return c
		}
		i, j = pi, pj
	}
	if i >= len(a) && j >= len(b) {
		return 0
	}
	if (i >= len(a) && !isAlphaByte(byteAt(b, j))) || isAlphaByte(byteAt(a, i)) {
		return -1
	}
	return 1
}

// CompareAPK compares two Alpine package versions as apk-tools 3 does (src/version.c; its
// ordering of valid versions is also that of apk-tools 2). A version reads as tokens:
// the first number, then ".number" parts, at most one lowercase letter, "_suffix[number]" parts,
// an optional "~commithash" and "-rN" revision. Tokens compare pairwise while both versions have
// the same kind of token: numbers as numbers (a later ".number" part with a leading zero as a
// string), letters and suffixes by rank (_alpha < _beta < _pre < _rc < release < _cvs < _svn <
// _git < _hg < _p), hashes as strings. When one version runs out or switches kind first, a
// pre-release suffix makes it older, otherwise the version whose next token is of an earlier
// kind (a number before a letter, before a suffix, ..., before the end) is newer. Parsing stops
// at the first invalid token, which sorts after the end.
func CompareAPK(a, b string) int {
	ta, tb := apkFirstToken(cString(a)), apkFirstToken(cString(b))
	for ta.kind == tb.kind && ta.kind < apkEnd {
		if c := ta.compare(&tb); c != 0 {
			return c
		}
		ta.next()
		tb.next()
	}
	switch {
	case ta.kind == tb.kind:
		return 0
	case ta.kind == apkSuffix && ta.suffix < apkSuffixNone:
		return -1
	case tb.kind == apkSuffix && tb.suffix < apkSuffixNone:
		return 1
	case ta.kind > tb.kind:
		return -1
	}
	return 1
}

// apk token kinds, in the order they may follow each other.
const (
	apkInitialDigit = iota
	apkDigit
	apkLetter
	apkSuffix
	apkSuffixNo
	apkCommitHash
	apkRevision
	apkEnd
	apkInvalid
)

// apkSuffixNone is the rank of a release: pre-release suffixes rank below it, the others above.
const apkSuffixNone = 5

// apkSuffixRank ranks the known suffixes; 0 is an unknown one.
var apkSuffixRank = map[string]int{
	"alpha": 1, "beta": 2, "pre": 3, "rc": 4,
	"cvs": 6, "svn": 7, "git": 8, "hg": 9, "p": 10,
}

// apkToken is the current token of a version being read and the rest of the version.
type apkToken struct {
	kind   int
	suffix int
	number uint64 // wraps on overflow, as apk's
	value  string
	rest   string
}

func apkFirstToken(s string) apkToken {
	t := apkToken{kind: apkInitialDigit, rest: s}
	t.digits()
	return t
}

// digits reads a run of digits as the token's value.
func (t *apkToken) digits() {
	n := 0
	t.number = 0
	for n < len(t.rest) && isDigitByte(t.rest[n]) {
		t.number = t.number*10 + uint64(t.rest[n]-'0')
		n++
	}
	t.value, t.rest = t.rest[:n], t.rest[n:]
	if n == 0 {
		t.kind = apkInvalid
	}
}

// span takes the longest prefix of the rest whose bytes satisfy ok.
func (t *apkToken) span(ok func(byte) bool) {
	n := 0
	for n < len(t.rest) && ok(t.rest[n]) {
		n++
	}
	t.value, t.rest = t.rest[:n], t.rest[n:]
}

// next reads the next token, checking that it may follow the current one.
func (t *apkToken) next() {
	if t.rest == "" {
		t.kind = apkEnd
		return
	}
	c := t.rest[0]
	switch {
	case c >= 'a' && c <= 'z' && t.kind <= apkDigit:
		t.kind, t.value, t.rest = apkLetter, t.rest[:1], t.rest[1:]
	case c == '.' && t.kind <= apkDigit:
		t.kind, t.rest = apkDigit, t.rest[1:]
		t.digits()
	case isDigitByte(c) && t.kind == apkSuffix:
		t.kind = apkSuffixNo
		t.digits()
	case c == '_' && t.kind <= apkSuffixNo:
		t.rest = t.rest[1:]
		t.span(func(c byte) bool { return c >= 'a' && c <= 'z' })
		t.kind, t.suffix = apkSuffix, apkSuffixRank[t.value]
		if t.suffix == 0 {
			t.kind = apkInvalid
		}
	case c == '~' && t.kind < apkCommitHash:
		t.rest = t.rest[1:]
		t.span(func(c byte) bool { return isDigitByte(c) || c >= 'a' && c <= 'f' })
		t.kind = apkCommitHash
		if t.value == "" {
			t.kind = apkInvalid
		}
	case strings.HasPrefix(t.rest, "-r") && t.kind < apkRevision:
		t.kind, t.rest = apkRevision, t.rest[2:]
		t.digits()
	default:
		t.kind = apkInvalid
	}
}

// compare compares two tokens of the same kind.
func (t *apkToken) compare(u *apkToken) int {
	switch t.kind {
	case apkDigit:
		if t.value[0] == '0' || u.value[0] == '0' {
			return strings.Compare(t.value, u.value)
		}
		return compareUint(t.number, u.number)
	case apkInitialDigit, apkSuffixNo, apkRevision:
		return compareUint(t.number, u.number)
	case apkLetter:
		return strings.Compare(t.value, u.value)
	case apkSuffix:
		return sign(t.suffix - u.suffix)
	}
	return strings.Compare(t.value, u.value)
}

func compareUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
