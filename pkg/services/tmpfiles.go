package services

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
)

// TmpfilesLine is one line of a tmpfiles.d(5) file the init applies at start.
type TmpfilesLine struct {
	Type    byte   // 'd', 'D', 'f', 'F', 'L'
	Replace bool   // "L+", "f+": replace what is there
	Path    string // absolute, clean, under /run, /var/run or /tmp
	Mode    uint32 // 0 when "-": the type's default (0755 for directories, 0644 for files)
	User    string // "" when "-": root
	Group   string // "" when "-": root
	Arg     string // the link target (L) or the content to write (f, F)
	Origin  string // "FILE:LINE", for messages
}

// tmpfilesRoots are where the init applies tmpfiles lines: the boot-time trees an image lacks.
var tmpfilesRoots = []string{"/run", "/var/run", "/tmp"}

// ParseTmpfiles reads one tmpfiles.d file and returns the lines the init applies (types d, D,
// f, F, L with their modes, owners and arguments; ages are ignored) for paths under /run,
// /var/run and /tmp, with %t, %T, %V, %S, %C, %L, %E and %% expanded. Other types, other paths,
// and malformed lines are returned as skipped reasons, never as errors.
func ParseTmpfiles(name string, b []byte) (lines []TmpfilesLine, skipped []string) {
	if len(b) > MaxUnitFile {
		return nil, []string{name + ": larger than " + strconv.Itoa(MaxUnitFile) + " bytes"}
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), MaxUnitFile+1)
	for n := 1; sc.Scan(); n++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || text[0] == '#' {
			continue
		}
		origin := fmt.Sprintf("%s:%d", name, n)
		l, why := parseTmpfilesLine(text)
		if why != "" {
			skipped = append(skipped, origin+": "+why)
			continue
		}
		l.Origin = origin
		lines = append(lines, l)
	}
	return lines, skipped
}

func parseTmpfilesLine(text string) (TmpfilesLine, string) {
	f, err := SplitWords(text)
	if err != nil || len(f) < 2 {
		return TmpfilesLine{}, "malformed line"
	}
	typ := strings.TrimRight(f[0], "!-=~^")
	var l TmpfilesLine
	if strings.HasSuffix(typ, "+") {
		l.Replace, typ = true, strings.TrimSuffix(typ, "+")
	}
	if len(typ) != 1 || !strings.Contains("dDfFL", typ) {
		return TmpfilesLine{}, "type " + f[0] + " is not applied"
	}
	l.Type = typ[0]
	p, err := ExpandSpecifiers(f[1], "", Specifiers{})
	if err != nil || !path.IsAbs(p) {
		return TmpfilesLine{}, "path " + f[1] + " is not an absolute path"
	}
	l.Path = path.Clean(p)
	if !slices.ContainsFunc(tmpfilesRoots, func(r string) bool { return strings.HasPrefix(l.Path, r+"/") }) {
		return TmpfilesLine{}, "path " + l.Path + " is not under /run, /var/run or /tmp"
	}
	field := func(i int) string {
		if i < len(f) && f[i] != "-" {
			return f[i]
		}
		return ""
	}
	if m := strings.TrimLeft(field(2), "~:"); m != "" {
		v, err := strconv.ParseUint(m, 8, 32)
		if err != nil || v > 0o7777 {
			return TmpfilesLine{}, "mode " + m + " is not octal"
		}
		l.Mode = uint32(v)
	}
	l.User, l.Group = field(3), field(4)
	if len(f) > 6 {
		l.Arg = strings.Join(f[6:], " ")
		if l.Type == 'L' {
			l.Arg = f[6]
		}
	}
	if l.Type == 'L' && l.Arg == "" {
		return TmpfilesLine{}, "L without a target"
	}
	return l, ""
}

// LoadTmpfiles reads the tmpfiles.d configuration of a root (fsys is "/" of the image): the
// "*.conf" files of TmpfilesPaths, a file name found in several directories taken from the
// first, applied in file name order; a path named by several lines keeps its first line.
func LoadTmpfiles(fsys fs.FS) (lines []TmpfilesLine, skipped []string) {
	byName := map[string]string{}
	for _, dir := range TmpfilesPaths {
		entries, err := fs.ReadDir(fsys, strings.TrimPrefix(dir, "/"))
		if err != nil {
			continue
		}
		for _, e := range entries {
			if _, seen := byName[e.Name()]; !seen && strings.HasSuffix(e.Name(), ".conf") {
				byName[e.Name()] = path.Join(dir, e.Name())
			}
		}
	}
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	slices.Sort(names)
	seen := map[string]bool{}
	for _, n := range names {
		b, err := fs.ReadFile(fsys, strings.TrimPrefix(byName[n], "/"))
		if err != nil {
			continue // /dev/null masks a file of the same name
		}
		ls, sk := ParseTmpfiles(byName[n], b)
		skipped = append(skipped, sk...)
		for _, l := range ls {
			if seen[l.Path] {
				continue
			}
			seen[l.Path] = true
			lines = append(lines, l)
		}
	}
	return lines, skipped
}
