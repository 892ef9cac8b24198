package convert

import (
	"archive/tar"
	"bytes"
	"reflect"
	"strings"
	"testing"
)

// layerTar builds a layer tar of name -> contents (regular files, in order).
func layerTar(t testing.TB, files [][2]string) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Name: f[0], Typeflag: tar.TypeReg, Mode: 0o600, Size: int64(len(f[1]))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(f[1])); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

const (
	certPEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
	keyPEM  = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE\n-----END EC PRIVATE KEY-----\n"
)

func TestScanLayerFindsSecrets(t *testing.T) {
	files := [][2]string{
		{"etc/ssl/private/site.pem", certPEM + strings.Repeat(certPEM, 40) + keyPEM}, // a key after a chain
		{"etc/ssl/private/pkcs8.key", "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIF\n"},
		{"root/.ssh/id_ed25519", "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n"},
		{"root/.ssh/id_ed25519.pub", "ssh-ed25519 AAAAC3Nz root@vm\n"},
		{"etc/ssl/certs/ca.pem", certPEM},
		{"etc/shadow", "root:$y$j9T$salt$hash:19000:0:99999:7:::\ndaemon:*:19000::::::\nlocked:!$6$s$h:1::::::\nnopw:!:1::::::\napp:!*:1::::::\n"},
		{"etc/gshadow", "root:*::\nadm:!::\n"},
		{"etc/nginx/.htpasswd", "alice:$apr1$abc$def\n# comment\n"},
		{"home/app/keys/client.p12", "\x30\x82binary"},
		{"home/app/.wh.old.key", ""},
		{"usr/share/doc/x/README", "how to make a -----BEGIN RSA PRIVATE KEY----- header"},
		{"home/app/putty.ppk", "PuTTY-User-Key-File-3: ssh-ed25519\n"},
		{"home/app/secring.asc", "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nlQ\n"},
	}
	got, err := scanLayer(bytes.NewReader(layerTar(t, files)), "vm-diff")
	if err != nil {
		t.Fatal(err)
	}
	want := []SecretFile{
		{Path: "/etc/ssl/private/site.pem", Kind: SecretPrivateKey, Layer: "vm-diff"},
		{Path: "/etc/ssl/private/pkcs8.key", Kind: SecretPrivateKey, Layer: "vm-diff"},
		{Path: "/root/.ssh/id_ed25519", Kind: SecretOpenSSHPrivateKey, Layer: "vm-diff"},
		{Path: "/etc/shadow", Kind: SecretPasswordHashes, Layer: "vm-diff", Count: 2},
		{Path: "/etc/nginx/.htpasswd", Kind: SecretPasswordHashes, Layer: "vm-diff", Count: 1},
		{Path: "/home/app/keys/client.p12", Kind: SecretPKCS12, Layer: "vm-diff"},
		{Path: "/home/app/putty.ppk", Kind: SecretPuTTYPrivateKey, Layer: "vm-diff"},
		{Path: "/home/app/secring.asc", Kind: SecretPGPPrivateKey, Layer: "vm-diff"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("found\n%+v\nwant\n%+v", got, want)
	}
}

// TestScanLayerReadsLittle: the scan of a seekable layer reads the headers and the first bytes of
// small files, not the contents of large ones.
func TestScanLayerReadsLittle(t *testing.T) {
	big := strings.Repeat("x", 8<<20)
	raw := layerTar(t, [][2]string{{"var/lib/big.img", big}, {"etc/ssh/ssh_host_rsa_key", "-----BEGIN RSA PRIVATE KEY-----\n"}})
	r := &countingReadSeeker{r: bytes.NewReader(raw)}
	got, err := scanLayer(r, "packages")
	if err != nil || len(got) != 1 || got[0].Path != "/etc/ssh/ssh_host_rsa_key" {
		t.Fatalf("got %+v, %v", got, err)
	}
	if r.n > 64<<10 {
		t.Errorf("read %d bytes of a %d-byte layer: the large file was read, not skipped", r.n, len(raw))
	}
}

type countingReadSeeker struct {
	r *bytes.Reader
	n int64
}

func (c *countingReadSeeker) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (c *countingReadSeeker) Seek(off int64, whence int) (int64, error) { return c.r.Seek(off, whence) }

// FuzzScanLayer: any bytes, as a layer or as a file's start, give an answer, never a panic.
func FuzzScanLayer(f *testing.F) {
	f.Add(layerTar(f, [][2]string{{"etc/shadow", "root:$6$a$b:1::::::\n"}, {"k", keyPEM}}), "/etc/shadow")
	f.Add([]byte("-----BEGIN -----BEGIN PRIVATE KEY-----"), "/x")
	f.Add([]byte("a:b:c\n::\n!:!!:\n"), "/etc/gshadow")
	f.Fuzz(func(t *testing.T, data []byte, name string) {
		_, _ = scanLayer(bytes.NewReader(data), "fuzz")
		if kind, n := classify(name, data); kind == "" && n != 0 {
			t.Fatalf("no kind but a count %d", n)
		}
	})
}
