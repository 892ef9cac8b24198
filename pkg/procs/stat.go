package procs

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
)

// Stat holds the fields of /proc/PID/stat that procs uses.
type Stat struct {
	PID        int
	Comm       string // may hold spaces and ')'
	State      byte   // one letter: R, S, D, Z, T, t, X, I, ...
	PPID       int
	PGRP       int
	Session    int
	TTY        int
	Flags      uint64 // PF_* flags; PF_KTHREAD marks kernel threads
	UTime      uint64 // clock ticks
	STime      uint64 // clock ticks
	NumThreads int
	StartTime  uint64 // clock ticks since boot
	VSize      uint64 // bytes
	RSS        int64  // pages
}

// pfKThread is the kernel's PF_KTHREAD task flag.
const pfKThread = 0x00200000

// statMinFields is the number of fields ParseStat needs (through rss).
const statMinFields = 24

// ErrMalformedStat is returned (wrapped) when a stat line cannot be decoded.
var ErrMalformedStat = errors.New("malformed stat")

// ParseStat decodes the contents of /proc/PID/stat. The command name is
// everything between the first '(' and the last ')', so names with spaces and
// parentheses decode correctly.
func ParseStat(b []byte) (Stat, error) {
	open := bytes.IndexByte(b, '(')
	closing := bytes.LastIndexByte(b, ')')
	if open < 0 || closing < open {
		return Stat{}, fmt.Errorf("parsing stat: %w: no (comm)", ErrMalformedStat)
	}
	var s Stat
	pid, err := strconv.Atoi(string(bytes.TrimSpace(b[:open])))
	if err != nil {
		return Stat{}, fmt.Errorf("parsing stat pid: %w: %w", ErrMalformedStat, err)
	}
	s.PID = pid
	s.Comm = string(b[open+1 : closing])
	rest := bytes.Fields(b[closing+1:])
	if len(rest)+2 < statMinFields {
		return Stat{}, fmt.Errorf("parsing stat: %w: %d fields", ErrMalformedStat, len(rest)+2)
	}
	if len(rest[0]) != 1 || !isLetter(rest[0][0]) {
		return Stat{}, fmt.Errorf("parsing stat state %q: %w", rest[0], ErrMalformedStat)
	}
	s.State = rest[0][0]
	p := statParser{fields: rest}
	s.PPID = p.int(4)
	s.PGRP = p.int(5)
	s.Session = p.int(6)
	s.TTY = p.int(7)
	s.Flags = p.uint(9)
	s.UTime = p.uint(14)
	s.STime = p.uint(15)
	s.NumThreads = p.int(20)
	s.StartTime = p.uint(22)
	s.VSize = p.uint(23)
	s.RSS = p.int64(24)
	if p.err != nil {
		return Stat{}, fmt.Errorf("parsing stat: %w: %w", ErrMalformedStat, p.err)
	}
	return s, nil
}

// statParser reads numbered stat fields (1-based, as in proc(5)) from the
// fields after the command name, keeping the first error.
type statParser struct {
	fields [][]byte
	err    error
}

func (p *statParser) field(n int) string { return string(p.fields[n-3]) }

func (p *statParser) keep(n int, err error) {
	if err != nil && p.err == nil {
		p.err = fmt.Errorf("field %d: %w", n, err)
	}
}

func (p *statParser) int(n int) int {
	v, err := strconv.Atoi(p.field(n))
	p.keep(n, err)
	return v
}

func (p *statParser) int64(n int) int64 {
	v, err := strconv.ParseInt(p.field(n), 10, 64)
	p.keep(n, err)
	return v
}

func (p *statParser) uint(n int) uint64 {
	v, err := strconv.ParseUint(p.field(n), 10, 64)
	p.keep(n, err)
	return v
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// ids holds the real and effective ids from /proc/PID/status.
type ids struct {
	uid, euid, gid int
}

// parseStatusIDs reads the Uid: and Gid: lines of /proc/PID/status.
func parseStatusIDs(b []byte) (ids, error) {
	var out ids
	var seenUID, seenGID bool
	for line := range bytes.Lines(b) {
		name, val, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		f := bytes.Fields(val)
		switch string(name) {
		case "Uid":
			if len(f) < 2 {
				return ids{}, fmt.Errorf("parsing status Uid: %q", val)
			}
			r, err1 := parseID(f[0])
			e, err2 := parseID(f[1])
			if err := errors.Join(err1, err2); err != nil {
				return ids{}, fmt.Errorf("parsing status Uid: %w", err)
			}
			out.uid, out.euid, seenUID = r, e, true
		case "Gid":
			if len(f) < 1 {
				return ids{}, fmt.Errorf("parsing status Gid: %q", val)
			}
			g, err := parseID(f[0])
			if err != nil {
				return ids{}, fmt.Errorf("parsing status Gid: %w", err)
			}
			out.gid, seenGID = g, true
		}
	}
	if !seenUID || !seenGID {
		return ids{}, errors.New("parsing status: no Uid or Gid line")
	}
	return out, nil
}

// parseID decodes a 32-bit uid or gid. On 32-bit platforms ids above
// MaxInt32 (nfsnobody's 4294967294) wrap to negative ints rather than
// failing; on 64-bit platforms they stay exact.
func parseID(b []byte) (int, error) {
	v, err := strconv.ParseUint(string(b), 10, 32)
	return int(v), err
}
