package proto

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"time"
)

// DefaultHandshakeTimeout bounds a client's handshake (TLS and proofs).
const DefaultHandshakeTimeout = 10 * time.Second

const (
	nonceSize   = 32
	helloSize   = len(Magic) + 2 + nonceSize
	proofSize   = sha256.Size
	clientLabel = "vm2image-client"
	serverLabel = "vm2image-server"
	// maxVerdict bounds the frame that ends a handshake (a proof or a status).
	maxVerdict = 4 + maxMessage
)

type nonce [nonceSize]byte

func newNonce() (nonce, error) {
	var n nonce
	if _, err := rand.Read(n[:]); err != nil {
		return n, fmt.Errorf("generating nonce: %w", err)
	}
	return n, nil
}

// proof is HMAC-SHA256(token, label || a || b || bind): the token itself never crosses the wire,
// and bind (the TLS exporter value, empty in plaintext) ties the proof to this TLS session.
func proof(token []byte, label string, a, b nonce, bind []byte) []byte {
	m := hmac.New(sha256.New, token)
	m.Write([]byte(label))
	m.Write(a[:])
	m.Write(b[:])
	m.Write(bind)
	return m.Sum(nil)
}

func writeHello(w io.Writer, version uint16, n nonce) error {
	b := make([]byte, 0, helloSize)
	b = append(b, Magic...)
	b = binary.BigEndian.AppendUint16(b, version)
	b = append(b, n[:]...)
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("sending hello: %w", err)
	}
	return nil
}

// readHello reads the peer's hello; peer names it in errors ("agent" or "client").
func readHello(r io.Reader, peer string) (uint16, nonce, error) {
	var b [helloSize]byte
	var n nonce
	if _, err := io.ReadFull(r, b[:len(Magic)]); err != nil {
		return 0, n, fmt.Errorf("reading hello: %w", err)
	}
	if looksLikeTLS(b[:len(Magic)]) || (peer == "agent" && b[0] == 0x15 && b[1] == 0x03) {
		return 0, n, fmt.Errorf("%w: the %s speaks TLS, but this side runs with --insecure-plaintext", ErrTransport, peer)
	}
	if !bytes.Equal(b[:len(Magic)], []byte(Magic)) {
		return 0, n, fmt.Errorf("reading hello: not a vm2image %s (it sent %q, want %q)", peer, b[:len(Magic)], Magic)
	}
	if _, err := io.ReadFull(r, b[len(Magic):]); err != nil {
		return 0, n, fmt.Errorf("reading hello: %w", err)
	}
	copy(n[:], b[len(Magic)+2:])
	return binary.BigEndian.Uint16(b[len(Magic):]), n, nil
}

// clientHandshake authenticates rw's peer as an agent holding token and proves that we hold it.
// bind is the TLS exporter value (nil in plaintext).
func clientHandshake(rw io.ReadWriter, token, bind []byte) error {
	cn, err := newNonce()
	if err != nil {
		return err
	}
	if err := writeHello(rw, Version, cn); err != nil {
		return err
	}
	v, sn, err := readHello(rw, "agent")
	if err != nil {
		return err
	}
	if v != Version {
		return fmt.Errorf("%w: this client speaks version %d, the agent speaks version %d", ErrVersion, Version, v)
	}
	if err := WriteFrame(rw, Frame{Type: FrameAuth, Payload: proof(token, clientLabel, sn, cn, bind)}); err != nil {
		return fmt.Errorf("sending proof: %w", err)
	}
	f, err := readFrame(rw, nil, maxVerdict)
	if err != nil {
		return fmt.Errorf("reading verdict: %w", err)
	}
	switch f.Type {
	case FrameAuthOK:
		if !hmac.Equal(f.Payload, proof(token, serverLabel, cn, sn, bind)) {
			return fmt.Errorf("%w: the agent could not prove that it holds the token for this TLS session "+
				"(a different token, or a relay between you and the agent)", ErrAuth)
		}
		return nil
	case FrameRefuse:
		status, _, bad := decodeStatus(f.Payload)
		if bad != nil {
			return fmt.Errorf("reading verdict: %w", bad)
		}
		if status == nil {
			return fmt.Errorf("reading verdict: refusal without a reason")
		}
		return fmt.Errorf("agent refused the connection: %w", status)
	}
	return fmt.Errorf("reading verdict: unexpected %v frame", f.Type)
}

// serverHandshake runs the server's side up to its verdict. When the client is not a vm2image
// client of our version holding token, it sends a refusal where it can and returns an error; on
// success the caller sends the verdict: accept, or refuse (when busy).
func serverHandshake(rw io.ReadWriter, token, bind []byte) (*handshake, error) {
	v, cn, err := readHello(rw, "client")
	if err != nil {
		return nil, err
	}
	sn, err := newNonce()
	if err != nil {
		return nil, err
	}
	if err := writeHello(rw, Version, sn); err != nil {
		return nil, err
	}
	if v != Version {
		err := fmt.Errorf("%w: the client speaks version %d, this agent speaks version %d", ErrVersion, v, Version)
		refuse(rw, err)
		return nil, err
	}
	f, err := readFrame(rw, nil, proofSize)
	if err != nil {
		return nil, fmt.Errorf("reading proof: %w", err)
	}
	if f.Type != FrameAuth {
		return nil, fmt.Errorf("reading proof: unexpected %v frame", f.Type)
	}
	if !hmac.Equal(f.Payload, proof(token, clientLabel, sn, cn, bind)) {
		err := fmt.Errorf("%w: wrong token, or a relay between the converter and the agent "+
			"(the proof does not cover this TLS session)", ErrAuth)
		refuse(rw, err)
		return nil, err
	}
	return &handshake{token: token, cn: cn, sn: sn, bind: bind}, nil
}

// handshake is a client authenticated by serverHandshake, waiting for the verdict.
type handshake struct {
	token  []byte
	cn, sn nonce
	bind   []byte
}

// accept sends the server's proof.
func (h *handshake) accept(w io.Writer) error {
	if err := WriteFrame(w, Frame{Type: FrameAuthOK, Payload: proof(h.token, serverLabel, h.cn, h.sn, h.bind)}); err != nil {
		return fmt.Errorf("sending verdict: %w", err)
	}
	return nil
}

// refuse sends a coded refusal; the caller closes the connection.
func refuse(w io.Writer, reason error) error {
	if err := WriteFrame(w, Frame{Type: FrameRefuse, Payload: encodeStatus(reason, nil)}); err != nil {
		return fmt.Errorf("sending refusal: %w", err)
	}
	return nil
}
