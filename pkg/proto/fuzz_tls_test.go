package proto

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// fixedIdentity is one agent identity for every fuzz iteration.
var fixedIdentity = sync.OnceValue(func() *Identity {
	id, err := NewIdentity()
	if err != nil {
		panic(err)
	}
	return id
})

// FuzzTLSHandshake completes TLS with a real server, then sends arbitrary bytes as the
// authentication messages: the server must never accept (send AuthOK), never panic nor hang.
func FuzzTLSHandshake(f *testing.F) {
	hello := helloBytes(Magic, Version)
	f.Add([]byte{})
	f.Add(hello)
	f.Add(append(hello, frameBytes(FrameAuth, 0, string(make([]byte, proofSize)))...))
	f.Add(append(hello, header(FrameAuth, 0, 1<<30)...))
	f.Add(append(hello, frameBytes(FrameRequest, 1, `{"op":"info"}`)...))
	f.Add(helloBytes(Magic, 1))
	f.Fuzz(func(t *testing.T, in []byte) {
		cc, sc := net.Pipe()
		srv := NewServer(newTestHandler(), ServerOptions{Token: testToken, Identity: fixedIdentity(), HandshakeTimeout: 2 * time.Second})
		done := make(chan error, 1)
		go func() { done <- srv.ServeConn(context.Background(), sc) }()
		tc := tls.Client(cc, clientTLSConfig(fixedIdentity().Fingerprint))
		tc.SetDeadline(time.Now().Add(5 * time.Second))
		if err := tc.Handshake(); err != nil {
			t.Fatalf("TLS handshake: %v", err)
		}
		go func() {
			tc.Write(in)
			tc.CloseWrite() // the server sees the end of what it is sent at once
		}()
		var out bytes.Buffer
		io.Copy(&out, tc)
		tc.Close()
		if err := <-done; err == nil {
			t.Fatalf("the server accepted %q", in)
		}
		b := out.Bytes()
		if len(b) >= helloSize {
			b = b[helloSize:]
		}
		if len(b) > 0 && FrameType(b[0]) == FrameAuthOK {
			t.Fatalf("the server sent AuthOK for %q", in)
		}
	})
}

// FuzzClientTLSHandshake lets a TLS agent without the token answer the client's hello with
// arbitrary bytes: the client must fail, never panic nor hang.
func FuzzClientTLSHandshake(f *testing.F) {
	f.Add(helloBytes(Magic, Version))
	f.Add(append(helloBytes(Magic, Version), frameBytes(FrameAuthOK, 0, string(make([]byte, proofSize)))...))
	f.Add(append(helloBytes(Magic, Version), frameBytes(FrameRefuse, 0, string(encodeStatus(ErrAuth, nil)))...))
	f.Add(append(helloBytes(Magic, Version), header(FrameAuthOK, 0, 1<<30)...))
	f.Add([]byte("\x15\x03\x03\x00\x02\x02\x28"))
	f.Fuzz(func(t *testing.T, in []byte) {
		cc, sc := net.Pipe()
		go func() {
			ts := tls.Server(sc, serverTLSConfig(fixedIdentity()))
			defer ts.Close()
			ts.SetDeadline(time.Now().Add(5 * time.Second))
			if ts.Handshake() != nil {
				return
			}
			go io.Copy(io.Discard, ts)
			ts.Write(in)
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := NewClient(ctx, cc, testToken, ClientOptions{Fingerprint: fixedIdentity().Fingerprint})
		if err == nil {
			c.Close()
			t.Fatalf("the client accepted an agent that answered %q", in)
		}
	})
}

// FuzzLimitedReader checks the bound of JSON answers: never more than n bytes out, and over set
// exactly when the input is longer.
func FuzzLimitedReader(f *testing.F) {
	f.Add([]byte(`{"a":1}`), uint16(3))
	f.Add([]byte(`[]`), uint16(2))
	f.Add([]byte{}, uint16(0))
	f.Fuzz(func(t *testing.T, in []byte, n uint16) {
		lr := &limitedReader{r: bytes.NewReader(in), n: int64(n)}
		got, err := io.ReadAll(lr)
		if len(got) > int(n) {
			t.Fatalf("read %d bytes past a limit of %d", len(got), n)
		}
		if over := len(in) > int(n); over != lr.over || over != (err != nil) {
			t.Fatalf("%d bytes, limit %d: over=%v err=%v", len(in), n, lr.over, err)
		}
		if !bytes.Equal(got, in[:len(got)]) {
			t.Fatal("content changed")
		}
	})
}

// FuzzParseFingerprint: a parsed fingerprint is canonical and parses to itself.
func FuzzParseFingerprint(f *testing.F) {
	f.Add(fixedIdentity().Fingerprint)
	f.Add(strings.ToUpper(fixedIdentity().Fingerprint))
	f.Add("SHA256:ab:cd")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		fp, err := ParseFingerprint(s)
		if err != nil {
			return
		}
		if len(fp) != len(FingerprintPrefix)+64 || !strings.HasPrefix(fp, FingerprintPrefix) {
			t.Fatalf("%q parsed to %q", s, fp)
		}
		if again, err := ParseFingerprint(fp); err != nil || again != fp {
			t.Fatalf("%q: not canonical: %q %v", fp, again, err)
		}
	})
}

// FuzzTokenBits: the estimate never panics and never grows when a character is dropped.
func FuzzTokenBits(f *testing.F) {
	f.Add([]byte("correct horse battery staple"))
	f.Add([]byte("\xff\xfe"))
	f.Fuzz(func(t *testing.T, tok []byte) {
		b := TokenBits(tok)
		if b < 0 {
			t.Fatalf("%q: %f bits", tok, b)
		}
		if len(tok) > 0 && TokenBits(tok[:len(tok)-1]) > b+1e-9 && len(distinctRunes(tok[:len(tok)-1])) == len(distinctRunes(tok)) {
			t.Fatalf("%q: dropping a character raised the estimate", tok)
		}
	})
}

func distinctRunes(b []byte) map[rune]bool {
	m := map[rune]bool{}
	for _, r := range string(b) {
		m[r] = true
	}
	return m
}
