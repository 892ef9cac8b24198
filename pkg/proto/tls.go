package proto

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"strings"
	"sync"
	"time"
)

// exporterLabel names the TLS exporter value (RFC 8446 section 7.5) that both proofs of the
// handshake cover: it differs on each side of a relay that terminates TLS, so a relay cannot pass
// the proofs through.
const exporterLabel = "EXPORTER-vm2image-auth-v2"

const bindingSize = 32

// FingerprintPrefix starts every fingerprint: "SHA256:" and 64 lowercase hex digits of the SHA-256
// of the agent's DER certificate.
const FingerprintPrefix = "SHA256:"

// Identity is an agent's TLS key and self-signed certificate, made fresh at every start.
type Identity struct {
	Cert        tls.Certificate
	Fingerprint string // FingerprintPrefix + hex
}

// NewIdentity generates an ECDSA P-256 key and a self-signed certificate for it.
func NewIdentity() (*Identity, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating TLS key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("generating certificate serial: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "vm2image-agent"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("making certificate: %w", err)
	}
	return &Identity{
		Cert:        tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key},
		Fingerprint: Fingerprint(der),
	}, nil
}

// Fingerprint returns the fingerprint of a DER certificate.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return FingerprintPrefix + hex.EncodeToString(sum[:])
}

// ParseFingerprint checks s and returns it in canonical form. It takes "SHA256:" (any case)
// followed by 64 hex digits, optionally separated by colons.
func ParseFingerprint(s string) (string, error) {
	h := strings.TrimSpace(s)
	if len(h) < len(FingerprintPrefix) || !strings.EqualFold(h[:len(FingerprintPrefix)], FingerprintPrefix) {
		return "", fmt.Errorf("invalid fingerprint %q: want %s followed by 64 hex digits", s, FingerprintPrefix)
	}
	h = strings.ToLower(strings.ReplaceAll(h[len(FingerprintPrefix):], ":", ""))
	if b, err := hex.DecodeString(h); err != nil || len(b) != sha256.Size {
		return "", fmt.Errorf("invalid fingerprint %q: want %s followed by 64 hex digits", s, FingerprintPrefix)
	}
	return FingerprintPrefix + h, nil
}

func serverTLSConfig(id *Identity) *tls.Config {
	return &tls.Config{
		Certificates:           []tls.Certificate{id.Cert},
		MinVersion:             tls.VersionTLS13,
		SessionTicketsDisabled: true, // every connection makes a full handshake with a fresh exporter
		// Full 16 KiB records from the start: responses are bulk streams, not web pages.
		DynamicRecordSizingDisabled: true,
	}
}

// clientTLSConfig trusts any certificate unless pin is set: without a pin, the channel binding of
// the token proofs is what defeats a relay; with one, a wrong certificate fails before any proof.
func clientTLSConfig(pin string) *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		InsecureSkipVerify: true, // verified below (pin) and by the channel-bound proofs
		ServerName:         "vm2image-agent",
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return fmt.Errorf("%w: the agent sent no certificate", ErrFingerprint)
			}
			got := Fingerprint(cs.PeerCertificates[0].Raw)
			if pin != "" && got != pin {
				return fmt.Errorf("%w: the agent's certificate is %s, but --fingerprint expects %s: "+
					"the agent was restarted (use the fingerprint it printed) or someone is between you and it",
					ErrFingerprint, got, pin)
			}
			return nil
		},
	}
}

// binding returns the exporter value of a TLS connection; nil for a plaintext one.
func binding(c net.Conn) ([]byte, error) {
	tc, ok := c.(interface{ ConnectionState() tls.ConnectionState })
	if !ok {
		return nil, nil
	}
	cs := tc.ConnectionState()
	b, err := cs.ExportKeyingMaterial(exporterLabel, nil, bindingSize)
	if err != nil {
		return nil, fmt.Errorf("exporting TLS keying material: %w", err)
	}
	return b, nil
}

// looksLikeTLS reports whether the first bytes a plaintext server read are a TLS handshake record.
func looksLikeTLS(b []byte) bool {
	return len(b) >= 2 && b[0] == 0x16 && b[1] == 0x03
}

// clientTLSError explains a failed TLS handshake on the client side.
func clientTLSError(err error) error {
	var rhe tls.RecordHeaderError
	switch {
	case errors.As(err, &rhe) && string(rhe.RecordHeader[:len(Magic)]) == Magic:
		return fmt.Errorf("%w: the agent speaks plaintext (it runs with --insecure-plaintext); "+
			"restart it without that flag, or give --insecure-plaintext to the converter too", ErrTransport)
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w: the agent closed the connection during the TLS handshake "+
			"(an agent older than protocol version %d, or one that ran out of patience): %v", ErrTransport, Version, err)
	}
	return fmt.Errorf("TLS handshake: %w", err)
}

// serverTLSError explains a failed TLS handshake on the server side.
func serverTLSError(err error) error {
	if strings.Contains(err.Error(), "bad certificate") {
		return fmt.Errorf("TLS handshake: the client refused this agent's certificate "+
			"(its --fingerprint names another agent, or someone is between it and us): %w", err)
	}
	return fmt.Errorf("TLS handshake: %w", err)
}

// serverTLSMismatch reports whether err from a TLS server handshake means the client spoke the
// plaintext protocol.
func serverTLSMismatch(err error) bool {
	var rhe tls.RecordHeaderError
	return errors.As(err, &rhe) && string(rhe.RecordHeader[:len(Magic)]) == Magic
}

// tlsReadBuffer is how much a TLS connection reads from the socket at once: TLS reads a record
// (at most 16 KiB) at a time, so without it a bulk stream costs a read system call per record.
const tlsReadBuffer = 256 << 10

// bufferedConn reads c through a large buffer. Only what TLS reads goes through it, so nothing
// it holds is lost: TLS is the only reader of c.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func newBufferedConn(c net.Conn) *bufferedConn {
	return &bufferedConn{Conn: c, r: bufio.NewReaderSize(c, tlsReadBuffer)}
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// batchConn collects what TLS writes once batching is on, so that a frame the server writes
// (several 16 KiB records) leaves in one system call when flushConn flushes it.
type batchConn struct {
	net.Conn
	mu       sync.Mutex
	w        *bufio.Writer
	batching bool
}

func newBatchConn(c net.Conn) *batchConn {
	return &batchConn{Conn: c, w: bufio.NewWriterSize(c, 128<<10)}
}

func (c *batchConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.batching {
		return c.Conn.Write(p)
	}
	return c.w.Write(p)
}

// startBatching is called once the handshake is done: from then on, writes wait for flush.
func (c *batchConn) startBatching() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.batching = true
}

func (c *batchConn) flush() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.w.Flush()
}

// flushConn is a TLS connection over a batchConn: each Write is flushed before it returns.
type flushConn struct {
	*tls.Conn
	b *batchConn
}

func (c *flushConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if ferr := c.b.flush(); err == nil && ferr != nil {
		return n, ferr
	}
	return n, err
}

// Close closes the socket first, so that a write blocked on a peer that reads nothing cannot hold
// it up; the close_notify alert is then lost, which the protocol does not need (frames delimit
// every answer).
func (c *flushConn) Close() error {
	err := c.b.Conn.Close()
	c.Conn.Close()
	return err
}
