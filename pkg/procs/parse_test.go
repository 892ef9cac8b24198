//go:build linux

package procs

import (
	"encoding/binary"
	"errors"
	"net"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
)

const (
	netHeader = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
	udpHeader = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n"
	tail      = " 00000000:00000000 00:00000000 00000000     0        0 "
)

func littleEndian(t *testing.T) {
	t.Helper()
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		t.Skip("the hand-written lines are as a little-endian kernel prints them")
	}
}

func TestParseNetFile(t *testing.T) {
	littleEndian(t)
	tests := []struct {
		name, proto, in string
		want            []Socket
	}{
		{"v4 loopback", "tcp", netHeader + "0: 0100007F:1F90 00000000:0000 0A" + tail + "11 1 0\n",
			[]Socket{{"tcp", "127.0.0.1", 8080, 11}}},
		{"v4 any and private", "tcp", netHeader + "0: 00000000:0016 00000000:0000 0A" + tail + "12\n" +
			"1: 0101A8C0:01BB 00000000:0000 0A" + tail + "13\n",
			[]Socket{{"tcp", "0.0.0.0", 22, 12}, {"tcp", "192.168.1.1", 443, 13}}},
		{"v4 established dropped", "tcp", "0: 0100007F:1F90 0100007F:D431 01" + tail + "14\n", nil},
		{"v6 loopback", "tcp6", "0: 00000000000000000000000001000000:0016 00000000000000000000000000000000:0000 0A" + tail + "15\n",
			[]Socket{{"tcp6", "::1", 22, 15}}},
		{"v6 any", "tcp6", "0: 00000000000000000000000000000000:0050 00000000000000000000000000000000:0000 0A" + tail + "16\n",
			[]Socket{{"tcp6", "::", 80, 16}}},
		{"v6 mapped v4", "tcp6", "0: 0000000000000000FFFF00000100007F:0050 00000000000000000000000000000000:0000 0A" + tail + "17\n",
			[]Socket{{"tcp6", "::ffff:127.0.0.1", 80, 17}}},
		{"v6 global", "tcp6", "0: B80D0120000000000000000001000000:0050 00000000000000000000000000000000:0000 0A" + tail + "18\n",
			[]Socket{{"tcp6", "2001:db8::1", 80, 18}}},
		{"udp bound", "udp", udpHeader + "1: 0100007F:0035 00000000:0000 07" + tail + "19 2 0000000000000000 0\n",
			[]Socket{{"udp", "127.0.0.1", 53, 19}}},
		{"udp connected dropped", "udp", "1: 0100007F:0035 0100007F:0035 01" + tail + "20 2 0 0\n", nil},
		{"udp closed with remote dropped", "udp", "1: 0100007F:0035 0100007F:0035 07" + tail + "21 2 0 0\n", nil},
		{"udp6 any", "udp6", "1: 00000000000000000000000000000000:0203 00000000000000000000000000000000:0000 07" + tail + "22 2 0 0\n",
			[]Socket{{"udp6", "::", 515, 22}}},
		{"port zero dropped", "udp", "1: 00000000:0000 00000000:0000 07" + tail + "23 2 0 0\n", nil},
		{"empty", "tcp", "", nil},
		{"header only", "tcp6", netHeader, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseNetFile(strings.NewReader(tt.in), tt.proto)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseNetFileErrors(t *testing.T) {
	tests := []struct{ name, proto, in string }{
		{"unknown proto", "sctp", ""},
		{"short line", "tcp", "0: 0100007F:1F90 00000000:0000 0A\n"},
		{"v6 address in tcp", "tcp", "0: 00000000000000000000000001000000:0016 00000000:0000 0A" + tail + "1\n"},
		{"v4 address in tcp6", "tcp6", "0: 0100007F:0016 00000000000000000000000000000000:0000 0A" + tail + "1\n"},
		{"bad hex", "tcp", "0: 0100007G:1F90 00000000:0000 0A" + tail + "1\n"},
		{"bad port", "tcp", "0: 0100007F:1F9 00000000:0000 0A" + tail + "1\n"},
		{"no colon", "tcp", "0: 0100007F1F90 00000000:0000 0A" + tail + "1\n"},
		{"bad state", "tcp", "0: 0100007F:1F90 00000000:0000 XA" + tail + "1\n"},
		{"bad inode", "tcp", "0: 0100007F:1F90 00000000:0000 0A" + tail + "-1\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := ParseNetFile(strings.NewReader(tt.in), tt.proto); err == nil {
				t.Errorf("no error, got %+v", got)
			}
		})
	}
}

// TestParseNetFileReal finds the test's own listener in the kernel's table.
func TestParseNetFileReal(t *testing.T) {
	for _, c := range []struct{ network, addr, proto, want string }{
		{"tcp4", "127.0.0.1:0", "tcp", "127.0.0.1"},
		{"tcp6", "[::1]:0", "tcp6", "::1"},
	} {
		l, err := net.Listen(c.network, c.addr)
		if err != nil {
			t.Logf("skipping %s: %v", c.network, err)
			continue
		}
		defer l.Close()
		f, err := l.(*net.TCPListener).File()
		if err != nil {
			t.Fatal(err)
		}
		var st syscall.Stat_t
		err = syscall.Fstat(int(f.Fd()), &st)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		table, err := os.Open("/proc/self/net/" + c.proto)
		if err != nil {
			t.Fatal(err)
		}
		defer table.Close()
		socks, err := ParseNetFile(table, c.proto)
		if err != nil {
			t.Fatal(err)
		}
		want := Socket{c.proto, c.want, l.Addr().(*net.TCPAddr).Port, st.Ino}
		if !slices.Contains(socks, want) {
			t.Errorf("%s table %+v lacks %+v", c.proto, socks, want)
		}
	}
}

func TestParseStat(t *testing.T) {
	real, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		t.Fatal(err)
	}
	s, err := ParseStat(real)
	if err != nil {
		t.Fatalf("own stat %q: %v", real, err)
	}
	if s.PID != os.Getpid() || s.PPID != os.Getppid() || s.StartTime == 0 || s.NumThreads < 1 {
		t.Errorf("own stat: %+v", s)
	}

	tests := []struct {
		in   string
		want Stat
	}{
		{statLine("1234", "a b) c", "1", "64", "99"),
			Stat{PID: 1234, Comm: "a b) c", State: 'S', PPID: 1, PGRP: 1, Session: 1, TTY: 0, Flags: 64,
				UTime: 5, STime: 6, NumThreads: 1, StartTime: 99, VSize: 1000, RSS: 10}},
		{statLine("7", "", "0", "0", "0"), Stat{PID: 7, State: 'S', PGRP: 1, Session: 1, UTime: 5, STime: 6,
			NumThreads: 1, VSize: 1000, RSS: 10}},
		{statLine("8", "((x)) (y", "3", "0", "1"), Stat{PID: 8, Comm: "((x)) (y", State: 'S', PPID: 3, PGRP: 1,
			Session: 1, UTime: 5, STime: 6, NumThreads: 1, StartTime: 1, VSize: 1000, RSS: 10}},
	}
	for _, tt := range tests {
		got, err := ParseStat([]byte(tt.in))
		if err != nil || got != tt.want {
			t.Errorf("ParseStat(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}

	for _, bad := range []string{"", "1 x S 1", "1 (x) S 1 2 3", "x (y)" + strings.Repeat(" 1", 30),
		strings.Replace(statLine("1", "x", "1", "0", "1"), ") S ", ") SS ", 1),
		strings.Replace(statLine("1", "x", "1", "0", "1"), " 1000 ", " -5 ", 1)} {
		if _, err := ParseStat([]byte(bad)); !errors.Is(err, ErrMalformedStat) {
			t.Errorf("ParseStat(%q): err %v, want ErrMalformedStat", bad, err)
		}
	}
}

func TestParseStatusIDs(t *testing.T) {
	got, err := parseStatusIDs([]byte("Name:\tx\nUid:\t1\t2\t3\t4\nGid:\t5\t6\t7\t8\n"))
	if err != nil || got != (ids{uid: 1, euid: 2, gid: 5}) {
		t.Errorf("got %+v, %v", got, err)
	}
	for _, bad := range []string{"", "Uid:\t1\t2\n", "Uid:\tx\t2\nGid:\t1\n", "Uid:\t1\nGid:\t1\n"} {
		if _, err := parseStatusIDs([]byte(bad)); err == nil {
			t.Errorf("parseStatusIDs(%q): no error", bad)
		}
	}
}

func TestParseIDNames(t *testing.T) {
	m := parseIDNames(strings.NewReader("#c\nroot:x:0:0::/:/bin/sh\n+nis::::\nbad:x:y:1\nsvc:x:4242:1\ndup:x:4242:1\nshort:x\n"))
	want := idNames{0: "root", 4242: "svc"}
	if len(m) != len(want) || m[0] != "root" || m[4242] != "svc" {
		t.Errorf("got %v, want %v", m, want)
	}
	if m.name(7) != "7" || m.name(0) != "root" {
		t.Errorf("names: %q %q", m.name(7), m.name(0))
	}
}

func TestSocketInode(t *testing.T) {
	for in, want := range map[string]uint64{"socket:[123]": 123, "pipe:[1]": 0, "socket:[x]": 0, "socket:[1": 0} {
		if got, _ := socketInode(in); got != want {
			t.Errorf("socketInode(%q) = %d, want %d", in, got, want)
		}
	}
}
