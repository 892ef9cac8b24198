package testenv

// WebVM is the standard fixture VM: Debian bookworm (minbase) with nginx serving a page, busybox
// for a small service of its own under a non-root user, and the kind of content the 2014
// prototype got wrong (directories named proc and sys deep in the tree, a file capability,
// hard links, a fifo, names with spaces).
var WebVM = Recipe{
	Suite:    "bookworm",
	Packages: []string{"nginx-light", "busybox", "libcap2-bin"},
	Script: `
useradd --uid 1001 --create-home --shell /bin/sh app
printf '<h1>hello from the vm2image fixture VM</h1>\n' > /var/www/html/index.html
mkdir -p /srv/app/public /srv/data/proc/1 /srv/data/sys/kernel /opt/tools
printf 'app service page\n' > /srv/app/public/index.html
printf 'not a pseudo file\n' > /srv/data/proc/1/status
printf 'kept\n' > /srv/data/sys/kernel/notes
printf 'shared\n' > /opt/tools/one && ln /opt/tools/one /opt/tools/two
printf 'a name with spaces\n' > '/opt/tools/with space.txt'
mkfifo /opt/tools/fifo
cp /bin/true /opt/tools/captool && setcap cap_net_raw+ep /opt/tools/captool
chown -R app:app /srv/app
sed -i 's/^\(\s*\)listen \[::\]:80 default_server;/\1listen [::]:80 default_server ipv6only=on;/' /etc/nginx/sites-available/default
`,
}
