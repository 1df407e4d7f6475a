package procmem

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// ReleaseExecutable unmaps the resident pages of the read-only mappings of
// this process's executable (its code and constant data), and returns how
// many bytes those mappings span. They are private file mappings that
// nothing writes, so no data is lost: a page is read back from the page
// cache (or the file) when it is next used. The file cannot change under
// them: the kernel refuses writes to a running executable (ETXTBSY), and
// one replaced by a rename is a new file, the old one kept while mapped.
func ReleaseExecutable() (int64, error) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return 0, err
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return 0, err
	}
	var released int64
	sc := bufio.NewScanner(bytes.NewReader(maps))
	for sc.Scan() {
		// address perms offset dev inode path
		fields := bytes.Fields(sc.Bytes())
		if len(fields) < 6 || string(fields[5]) != exe {
			continue
		}
		perms := string(fields[1])
		if len(perms) != 4 || perms[1] == 'w' || perms[3] != 'p' {
			continue // writable data holds the process's own changes
		}
		lo, hi, ok := bytes.Cut(fields[0], []byte("-"))
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(string(lo), 16, 64)
		end, err2 := strconv.ParseUint(string(hi), 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			return released, fmt.Errorf("procmem: bad mapping %q in /proc/self/maps", fields[0])
		}
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, uintptr(start), uintptr(end-start), unix.MADV_DONTNEED); errno != 0 {
			return released, fmt.Errorf("procmem: madvise %s: %w", fields[0], errno)
		}
		released += int64(end - start)
	}
	return released, sc.Err()
}
