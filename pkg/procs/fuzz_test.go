//go:build linux

package procs

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"reflect"
	"strings"
	"testing"
)

func FuzzParseNetFile(f *testing.F) {
	for _, p := range netProtos {
		if b, err := os.ReadFile("/proc/self/net/" + p.name); err == nil {
			f.Add(string(b), p.name)
		}
	}
	f.Add(netHeader+"0: 0100007F:1F90 00000000:0000 0A"+tail+"11 1 0\n", "tcp")
	f.Add("0: 0000000000000000FFFF00000100007F:0050 00000000000000000000000000000000:0000 0A"+tail+"17\n", "tcp6")
	f.Add("1: 00000000:0035 00000000:0000 07"+tail+"19 2 0 0\n", "udp")
	f.Add("1: 00000000000000000000000000000000:0203 00000000000000000000000000000000:0000 07"+tail+"22\n", "udp6")
	f.Fuzz(func(t *testing.T, in, proto string) {
		socks, err := ParseNetFile(strings.NewReader(in), proto)
		if err != nil {
			return
		}
		var again strings.Builder
		for _, s := range socks {
			a, err := netip.ParseAddr(s.Addr)
			if s.Proto != proto || err != nil || a.Zone() != "" || s.Port < 1 || s.Port > 65535 {
				t.Fatalf("bad socket %+v from %q", s, in)
			}
			again.WriteString(formatNetLine(s))
		}
		// What was decoded encodes back to lines that decode the same.
		socks2, err := ParseNetFile(strings.NewReader(again.String()), proto)
		if err != nil || !reflect.DeepEqual(socks, socks2) {
			t.Fatalf("round trip of %+v: %+v, %v", socks, socks2, err)
		}
	})
}

// formatNetLine writes s as the kernel would, with native-order words.
func formatNetLine(s Socket) string {
	a := netip.MustParseAddr(s.Addr)
	raw := a.AsSlice()
	var local, remote strings.Builder
	for i := 0; i < len(raw); i += 4 {
		fmt.Fprintf(&local, "%08X", binary.NativeEndian.Uint32(raw[i:]))
		remote.WriteString("00000000")
	}
	state := "0A"
	if strings.HasPrefix(s.Proto, "udp") {
		state = "07"
	}
	return fmt.Sprintf("0: %s:%04X %s:0000 %s%s%d 1 0\n", local.String(), s.Port, remote.String(), state, tail, s.Inode)
}

func FuzzParseStat(f *testing.F) {
	if b, err := os.ReadFile("/proc/self/stat"); err == nil {
		f.Add(b)
	}
	f.Add([]byte(statLine("1234", "a b) c", "1", "64", "99")))
	f.Add([]byte(statLine("2", "kthreadd", "0", "2129984", "1")))
	f.Add([]byte("1 (x"))
	f.Fuzz(func(t *testing.T, in []byte) {
		s, err := ParseStat(in)
		if err != nil {
			return
		}
		// What was decoded encodes back to a line that decodes the same.
		s2, err := ParseStat([]byte(formatStat(s)))
		if err != nil || s2 != s {
			t.Fatalf("round trip of %+v from %q: %+v, %v", s, in, s2, err)
		}
	})
}

// formatStat writes the fields of s in their /proc/PID/stat positions.
func formatStat(s Stat) string {
	return fmt.Sprintf("%d (%s) %c %d %d %d %d -1 %d 0 0 0 0 %d %d 0 0 20 0 %d 0 %d %d %d 0\n",
		s.PID, s.Comm, s.State, s.PPID, s.PGRP, s.Session, s.TTY, s.Flags,
		s.UTime, s.STime, s.NumThreads, s.StartTime, s.VSize, s.RSS)
}
