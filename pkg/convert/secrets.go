package convert

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/vm2image/vm2image/pkg/archive"
	"github.com/vm2image/vm2image/pkg/cache"
)

// Images hold what the VM holds, secrets included: a VM's host keys, TLS keys and password
// hashes go wherever the image is pushed. The conversion does not drop them (the image would not
// be faithful) but names them in the report, so the operator sees what a push would publish.
// The layers are scanned after they are written, reading their headers and only the first bytes
// of small regular files (tar seeks over the rest): a fraction of the layer is read again.

// Kinds of secret files.
const (
	SecretPrivateKey        = "private-key"         // PEM: RSA, EC, DSA, PKCS#8 (plain or encrypted)
	SecretOpenSSHPrivateKey = "openssh-private-key" // -----BEGIN OPENSSH PRIVATE KEY-----
	SecretPGPPrivateKey     = "pgp-private-key"     // an armored PGP private key block
	SecretPuTTYPrivateKey   = "putty-private-key"   // PuTTY-User-Key-File
	SecretPasswordHashes    = "password-hashes"     // shadow, gshadow, htpasswd entries with a real hash
	SecretPKCS12            = "pkcs12"              // .p12 and .pfx key stores
)

// SecretFile is a file of an image layer that holds a private key or password hashes: its path
// and kind, never its contents.
type SecretFile struct {
	Path  string `json:"path"`
	Kind  string `json:"kind"`
	Layer string `json:"layer"`           // the layer's role: packages, vm-diff
	Count int    `json:"count,omitempty"` // password-hashes: how many accounts have one
}

const (
	sniffMaxSize = 1 << 20  // larger files are not sniffed: keys and password files are small
	sniffBytes   = 16 << 10 // how much of a file is looked at: a key may follow a certificate chain
)

// scanLayerFile lists the secret files of the uncompressed layer tar at p.
func scanLayerFile(p, role string) ([]SecretFile, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("scanning the %s layer for secrets: %w", role, err)
	}
	defer f.Close()
	out, err := scanLayer(f, role)
	if err != nil {
		return out, fmt.Errorf("scanning the %s layer for secrets: %w", role, err)
	}
	return out, nil
}

// scanLayer lists the secret files of a layer tar. A seekable r is read only where it matters.
func scanLayer(r io.Reader, role string) ([]SecretFile, error) {
	tr := tar.NewReader(r)
	var out []SecretFile
	buf := make([]byte, sniffBytes)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		name := "/" + strings.TrimPrefix(path.Clean("/"+h.Name), "/")
		if h.Typeflag != tar.TypeReg || h.Size == 0 || archive.IsWhiteout(name) {
			continue
		}
		if kind := kindByName(name); kind != "" {
			out = append(out, SecretFile{Path: name, Kind: kind, Layer: role})
			continue
		}
		if h.Size > sniffMaxSize {
			continue
		}
		n, err := io.ReadFull(tr, buf[:min(int64(len(buf)), h.Size)])
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
			return out, err
		}
		if kind, count := classify(name, buf[:n]); kind != "" {
			out = append(out, SecretFile{Path: name, Kind: kind, Layer: role, Count: count})
		}
	}
}

// kindByName knows key stores by their names: their contents are binary.
func kindByName(name string) string {
	switch strings.ToLower(path.Ext(name)) {
	case ".p12", ".pfx":
		return SecretPKCS12
	}
	return ""
}

// classify says what secret the start of a file holds, if any.
func classify(name string, head []byte) (kind string, count int) {
	if isPasswordFile(name) {
		if n := countHashes(head); n > 0 {
			return SecretPasswordHashes, n
		}
		return "", 0
	}
	switch {
	case bytes.Contains(head, []byte("-----BEGIN OPENSSH PRIVATE KEY-----")):
		return SecretOpenSSHPrivateKey, 0
	case bytes.Contains(head, []byte("-----BEGIN PGP PRIVATE KEY BLOCK-----")):
		return SecretPGPPrivateKey, 0
	case pemPrivateKey(head):
		return SecretPrivateKey, 0
	case bytes.HasPrefix(head, []byte("PuTTY-User-Key-File-")):
		return SecretPuTTYPrivateKey, 0
	}
	return "", 0
}

// pemPrivateKey finds a "-----BEGIN ... PRIVATE KEY-----" line.
func pemPrivateKey(head []byte) bool {
	for rest := head; ; {
		i := bytes.Index(rest, []byte("-----BEGIN "))
		if i < 0 {
			return false
		}
		rest = rest[i+len("-----BEGIN "):]
		line, _, _ := bytes.Cut(rest, []byte("\n"))
		if bytes.HasSuffix(bytes.TrimRight(line, "\r"), []byte("PRIVATE KEY-----")) {
			return true
		}
	}
}

func isPasswordFile(name string) bool {
	switch name {
	case "/etc/shadow", "/etc/shadow-", "/etc/gshadow", "/etc/gshadow-":
		return true
	}
	return strings.Contains(path.Base(name), "htpasswd")
}

// countHashes counts the lines of a shadow, gshadow or htpasswd file whose password field holds
// a hash: not empty, "*", "x" or "!" alone (a "!" before a hash locks the account but the hash
// is still there).
func countHashes(head []byte) int {
	field := 1 // shadow and gshadow: NAME:HASH:...; htpasswd: NAME:HASH
	n := 0
	for _, line := range strings.Split(string(head), "\n") {
		f := strings.Split(strings.TrimRight(line, "\r"), ":")
		if len(f) <= field || f[0] == "" || strings.HasPrefix(f[0], "#") {
			continue
		}
		h := strings.TrimLeft(f[field], "!")
		if h != "" && h != "*" && h != "x" && !strings.HasPrefix(h, "*") {
			n++
		}
	}
	return n
}

// scanSecrets adds the secret files of the layer at p (of role) to the report.
func (r *run) scanSecrets(p, role string) {
	found, err := scanLayerFile(p, role)
	if err != nil {
		r.opts.Logf("%v", err) // the layer was written and is read by the image writer next
	}
	r.report.SecretFiles = append(r.report.SecretFiles, found...)
}

// scanSecretsOnce is scanSecrets for a cached layer: the findings are kept in the image cache by
// the layer's diffID (IMAGES/secrets/HEX.json), so a layer is scanned once.
func (r *run) scanSecretsOnce(p, role string, diffID v1.Hash) {
	cached := filepath.Join(r.cacheRoot().Path(cache.Images), "secrets", diffID.Hex+".json")
	if b, err := os.ReadFile(cached); err == nil {
		var found []SecretFile
		if json.Unmarshal(b, &found) == nil {
			r.report.SecretFiles = append(r.report.SecretFiles, found...)
			return
		}
	}
	found, err := scanLayerFile(p, role)
	if err != nil {
		r.opts.Logf("%v", err)
		r.report.SecretFiles = append(r.report.SecretFiles, found...)
		return
	}
	if b, err := json.Marshal(found); err == nil {
		_ = writePrivateAtomic(cached, b)
	}
	r.report.SecretFiles = append(r.report.SecretFiles, found...)
}
