package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// The tests of command:remote:Command log in to a real OpenSSH server: sshd, started for the
// test on 127.0.0.1 with a configuration, host keys and authorized_keys of its own in a
// temporary directory, as the user running the tests (root is fine), and killed at the end.

const sshdPath = "/usr/sbin/sshd"

// testKeys are generated once per test run: an RSA key is slow to generate.
var testKeys = sync.OnceValues(func() (*keySet, error) {
	var ks keySet
	var err error
	if ks.hostEd25519, ks.hostEd25519Pub, err = newEd25519Key(); err != nil {
		return nil, err
	}
	if ks.client, ks.clientPub, err = newEd25519Key(); err != nil {
		return nil, err
	}
	if ks.other, ks.otherPub, err = newEd25519Key(); err != nil {
		return nil, err
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	if ks.hostRSA, err = pemKey(rsaKey, nil); err != nil {
		return nil, err
	}
	if ks.hostRSAPub, err = authorizedKey(&rsaKey.PublicKey); err != nil {
		return nil, err
	}
	return &ks, nil
})

// keySet holds private keys as OpenSSH PEM text and public keys in authorized_keys form.
type keySet struct {
	hostEd25519, hostEd25519Pub string
	hostRSA, hostRSAPub         string
	client, clientPub           string // authorized on every test server
	other, otherPub             string // authorized nowhere
}

func newEd25519Key() (private, public string, err error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", "", err
	}
	if private, err = pemKey(priv, nil); err != nil {
		return "", "", err
	}
	public, err = authorizedKey(pub)
	return private, public, err
}

func pemKey(key any, passphrase []byte) (string, error) {
	var block *pem.Block
	var err error
	if passphrase != nil {
		block, err = ssh.MarshalPrivateKeyWithPassphrase(key, "test", passphrase)
	} else {
		block, err = ssh.MarshalPrivateKey(key, "test")
	}
	if err != nil {
		return "", err
	}
	return string(pem.EncodeToMemory(block)), nil
}

func authorizedKey(pub any) (string, error) {
	key, err := ssh.NewPublicKey(pub)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key))), nil
}

// sshServer is a running test sshd.
type sshServer struct {
	port int
	user string
	keys *keySet
	log  *syncBuffer
}

// syncBuffer collects sshd's log, written while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// requireSSHD skips the test when there is no sshd to run, except in CI (env CI set), where
// a missing sshd fails it: .ci/run installs openssh-server.
func requireSSHD(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(sshdPath); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is missing (CI is set, so this fails instead of skipping): %v; "+
				"install openssh-server", sshdPath, err)
		}
		t.Skipf("%s is missing, so there is no SSH server to test against: apt-get install openssh-server", sshdPath)
	}
}

// noAgent keeps the tests from using the SSH agent of whoever runs them: the provider, as
// upstream, adds the keys of SSH_AUTH_SOCK's agent when no agentSocketPath is given.
func noAgent(t *testing.T) { t.Setenv("SSH_AUTH_SOCK", "") }

// startSSHD starts sshd on a free port of 127.0.0.1. config lines come first in its
// configuration: for most settings sshd keeps the first value it reads.
func startSSHD(t *testing.T, config ...string) *sshServer {
	t.Helper()
	requireSSHD(t)
	noAgent(t)
	keys, err := testKeys()
	if err != nil {
		t.Fatal(err)
	}
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		// sshd run by root insists on its privilege separation directory, which the package's
		// service creates at boot (a container may not have it).
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			t.Fatal(err)
		}
	}

	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	hostKey := write("host_ed25519", keys.hostEd25519)
	hostRSA := write("host_rsa", keys.hostRSA)
	authorized := write("authorized_keys", keys.clientPub+"\n")

	for attempt := 0; ; attempt++ {
		port := freePort(t)
		lines := append(append([]string{}, config...),
			fmt.Sprintf("ListenAddress 127.0.0.1:%d", port),
			"HostKey "+hostKey,
			"HostKey "+hostRSA,
			"AuthorizedKeysFile "+authorized,
			"StrictModes no",
			"UsePAM no",
			"PidFile none",
			"PermitRootLogin prohibit-password",
			"PasswordAuthentication no",
			"KbdInteractiveAuthentication no",
			"LogLevel VERBOSE",
		)
		conf := write("sshd_config", strings.Join(lines, "\n")+"\n")
		log := &syncBuffer{}
		cmd := exec.Command(sshdPath, "-D", "-e", "-f", conf)
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		stop := func() {
			_ = cmd.Process.Kill() // by its PID
			<-exited
		}
		srv := &sshServer{port: port, user: u.Username, keys: keys, log: log}
		err := srv.waitListening(exited)
		if err == nil {
			t.Cleanup(func() {
				stop()
				if t.Failed() {
					t.Logf("sshd on port %d logged:\n%s", port, log)
				}
			})
			return srv
		}
		stop()
		if attempt == 2 {
			t.Fatalf("sshd did not start: %v\n%s", err, log)
		}
		// Most likely another process took the free port first: try another.
	}
}

func (s *sshServer) waitListening(exited <-chan error) error {
	ready := fmt.Sprintf("Server listening on 127.0.0.1 port %d", s.port)
	deadline := time.After(10 * time.Second)
	for !strings.Contains(s.log.String(), ready) {
		select {
		case err := <-exited:
			return fmt.Errorf("sshd exited: %v", err)
		case <-deadline:
			return errors.New("sshd did not listen within 10s")
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// freePort returns a TCP port of 127.0.0.1 that nothing listens on (right now).
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return port
}

// connection is a connection input that logs in to s with the authorized client key and
// does not retry (a test server is up before the test uses it).
func (s *sshServer) connection() map[string]any {
	return map[string]any{
		"host": "127.0.0.1", "port": float64(s.port), "user": s.user,
		"privateKey": s.keys.client, "dialErrorLimit": float64(0),
	}
}

func (s *sshServer) portString() string { return strconv.Itoa(s.port) }
