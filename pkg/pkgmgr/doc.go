// Package pkgmgr reads installed-package databases (dpkg, rpm, apk, pacman) into one model of packages and dependency edges.
package pkgmgr
