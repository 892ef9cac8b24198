/*
 * vercmp: pacman's version comparison, libalpm's alpm_pkg_vercmp, as a command. It is the
 * oracle of pkg/pkgmgr's TestComparePacmanOracle. Debian ships libalpm (libalpm13, libalpm-dev)
 * but not pacman's own vercmp tool, so scripts/setup.sh builds this one into
 * /usr/local/libexec/vm2image/vercmp.
 *
 *   vercmp A B   prints -1, 0 or 1 (A older than, the same as, newer than B), as pacman's
 *                vercmp does
 *   vercmp       reads "A<TAB>B" lines on standard input and prints one answer a line
 */
#include <alpm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

static int compare_lines(void)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int status = 0;

	while ((n = getline(&line, &cap, stdin)) != -1) {
		if (n > 0 && line[n - 1] == '\n')
			line[--n] = '\0';
		char *tab = strchr(line, '\t');
		if (tab == NULL) {
			fprintf(stderr, "vercmp: reading pairs: a line without a tab\n");
			status = 2;
			break;
		}
		*tab = '\0';
		printf("%d\n", alpm_pkg_vercmp(line, tab + 1));
	}
	free(line);
	if (ferror(stdin)) {
		perror("vercmp: reading pairs");
		status = 1;
	}
	return status;
}

int main(int argc, char **argv)
{
	int status;

	if (argc == 3) {
		printf("%d\n", alpm_pkg_vercmp(argv[1], argv[2]));
		status = 0;
	} else if (argc == 1) {
		status = compare_lines();
	} else {
		fprintf(stderr, "usage: vercmp A B\n       vercmp < pairs (A<TAB>B a line)\n");
		return 2;
	}
	if (fflush(stdout) != 0 || ferror(stdout)) {
		perror("vercmp: writing");
		return 1;
	}
	return status;
}
