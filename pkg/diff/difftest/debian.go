package difftest

import "github.com/vm2image/vm2image/internal/testenv"

// DebianOld is the old side of the real pair of trees: a debootstrap minbase bookworm root.
var DebianOld = testenv.Recipe{Suite: "bookworm"}

// DebianNew is the new side: the same root plus packages, edited configuration, deleted
// documentation, a new user, changed modes and owners, a hard link and a touched file. Both
// are built once and cached by testenv.Root.
var DebianNew = testenv.Recipe{
	Suite:    "bookworm",
	Packages: []string{"less", "netbase", "procps"},
	Script: `
echo 'welcome to the vm2image oracle' >> /etc/motd
echo 'net.ipv4.ip_forward=1' > /etc/sysctl.d/99-oracle.conf
sed -i 's/^#force_color_prompt=yes/force_color_prompt=yes/' /etc/skel/.bashrc
useradd --uid 1001 --create-home --shell /bin/sh app
rm -rf /usr/share/doc/* /usr/share/man/man8
chmod 0700 /root
chown 1001:1001 /srv
mkdir -p /opt/tools && printf 'shared\n' > /opt/tools/one && ln /opt/tools/one /opt/tools/two
touch -d '2021-01-01 00:00:00' /etc/issue
`,
}
