//! How the process holds memory: what glibc's allocator keeps, and what
//! start-up leaves mapped that serving does not need.

use std::path::Path;

/// glibc keeps a freed block of any size for reuse once it has freed one
/// that size (its mmap threshold rises to match, up to 32 MiB), so each
/// password check's 19 MiB Argon2 block stayed resident for good. A fixed
/// threshold of 1 MiB hands every block that large back to the system when
/// it is freed; smaller ones (the 256 KiB file buffers) stay in the heap.
///
/// Fixing that threshold also fixes the one for trimming a heap's free top
/// at 128 KiB: an upload's chunks (hundreds of KiB, freed by the threads
/// that hash and write them) then went back to the system by the MiB and
/// were faulted in again, zeroed, for the next ones, about a sixth of the
/// server's CPU on a large upload (`perf`). A heap now keeps up to
/// [`KEPT_HEAP_TOP`] free at its top.
/// Called first thing in `main`, before any other thread exists.
pub fn return_large_blocks_to_the_system() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a number in glibc's allocator; it is called
    // before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, KEPT_HEAP_TOP);
    }
}

/// The free memory at the top of a heap that glibc keeps rather than trims:
/// a few chunks in flight, not more (each of the allocator's arenas may keep
/// this much).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const KEPT_HEAP_TOP: libc::c_int = 4 << 20;

/// Gives back what start-up used and serving does not: the heap's free pages,
/// which glibc keeps, and the binary's machine code. Start-up (the command
/// line, migrations, the routes, the OpenAPI documents) runs code spread over
/// most of the 26 MiB of `.text`, and the kernel maps a file's pages in the
/// blocks its page cache holds them in (64 KiB and more around each page
/// faulted in): some 20 MiB resident, most of it code that never runs again.
/// Unmapped here, the code stays in the page cache, and the pages requests
/// run are mapped back as they first run them (a minor fault each, no disk
/// read). Called once the server is listening.
pub fn release_start_up_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim only hands free pages of glibc's heap back to
        // the system; it takes the allocator's own locks.
        unsafe {
            libc::malloc_trim(0);
        }
        let (Ok(exe), Ok(smaps)) = (
            std::env::current_exe(),
            std::fs::read_to_string("/proc/self/smaps"),
        ) else {
            return;
        };
        for (start, end) in code_mappings(&smaps, &exe) {
            // SAFETY: the range is a private, read-only, executable mapping
            // of the binary's own file with no page of its own (none was
            // written), and the file cannot change while it runs (the kernel
            // refuses writes to a running executable).
            unsafe { release_file_pages(start, end - start) };
        }
    }
}

/// Unmaps the pages of a file mapping from the process; the next read of one
/// maps it back from the page cache, a minor fault (no disk read).
///
/// # Safety
/// `start..start + len` must be a private mapping of a file, none of whose
/// pages the process has written: the copy a write made would be lost.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
unsafe fn release_file_pages(start: usize, len: usize) {
    // SAFETY: as the caller promises, the pages hold nothing but the file's
    // bytes, which the next access reads again.
    unsafe {
        libc::madvise(start as *mut libc::c_void, len, libc::MADV_DONTNEED);
    }
}

/// The address ranges `/proc/self/smaps` lists as private executable
/// mappings of `exe` that hold only the file's bytes: a page the process
/// wrote (a debugger's breakpoint, a text relocation) is a copy of its own,
/// counted as anonymous, which releasing would lose.
fn code_mappings(smaps: &str, exe: &Path) -> Vec<(usize, usize)> {
    let mut found = Vec::new();
    let mut current = None;
    for line in smaps.lines() {
        if let Some(kib) = line.strip_prefix("Anonymous:") {
            if let Some(range) = current.take() {
                if kib.trim() == "0 kB" {
                    found.push(range);
                }
            }
        } else if !line.starts_with(|c: char| c.is_ascii_uppercase()) {
            // A mapping's first line; the lines about it start with a name.
            current = code_range(line, exe);
        }
    }
    found
}

/// The range of a mapping's line (as `/proc/self/maps` has it) if it is a
/// private executable mapping of `exe`.
fn code_range(line: &str, exe: &Path) -> Option<(usize, usize)> {
    let mut fields = line.split_ascii_whitespace();
    let (start, end) = fields.next()?.split_once('-')?;
    if fields.next()? != "r-xp" {
        return None;
    }
    // The path is the rest of the line (it may hold spaces); no field
    // before it holds a slash.
    if Path::new(&line[line.find('/')?..]) != exe {
        return None;
    }
    let start = usize::from_str_radix(start, 16).ok()?;
    let end = usize::from_str_radix(end, 16).ok()?;
    (start < end).then_some((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
5581a1a00000-5581a2200000 r--p 00000000 fd:01 1234 /opt/depot/bin/depot
Rss:                8192 kB
Anonymous:             0 kB
VmFlags: rd mr mw me
5581a2200000-5581a3e00000 r-xp 00800000 fd:01 1234 /opt/depot/bin/depot
Rss:               18432 kB
Anonymous:             0 kB
VmFlags: rd ex mr mw me
5581a3e00000-5581a3f00000 r-xp 02400000 fd:01 1234 /opt/depot/bin/depot
Rss:                  64 kB
Anonymous:             4 kB
VmFlags: rd ex mr mw me
5581a4000000-5581a4100000 rw-p 02600000 fd:01 1234 /opt/depot/bin/depot
Anonymous:            96 kB
5581a5000000-5581a5800000 rw-p 00000000 00:00 0                          [heap]
Anonymous:          1220 kB
7f0c1c028000-7f0c1c1bd000 r-xp 00028000 fd:01 5678 /usr/lib/x86_64-linux-gnu/libc.so.6
Anonymous:             0 kB
7f0c1c400000-7f0c1c500000 r-xp 00000000 fd:01 9999 /opt/depot/bin/depot-helper
Anonymous:             0 kB
1000-2000 r-xp 00000000 fd:01 1 /srv/my depot/depot (deleted)
Anonymous:             0 kB
ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]
Anonymous:             0 kB
";

    /// Minor page faults this thread has taken so far.
    fn faults() -> i64 {
        // SAFETY: getrusage only fills the struct it is handed.
        unsafe {
            let mut usage: libc::rusage = std::mem::zeroed();
            libc::getrusage(libc::RUSAGE_THREAD, &mut usage);
            usage.ru_minflt
        }
    }

    /// Touches 2 MiB of chunks the size of an upload's, frees them, and
    /// answers the faults that touching as much again took.
    fn faults_of_the_second_round() -> i64 {
        let round = || {
            let chunks: Vec<Vec<u8>> = (0..8).map(|_| vec![1u8; 256 << 10]).collect();
            std::hint::black_box(&chunks);
        };
        round();
        let before = faults();
        round();
        faults() - before
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn freed_chunks_are_reused_without_faulting_memory_in_again() {
        // nextest runs each test in a process of its own: the settings
        // touch no other test.
        return_large_blocks_to_the_system();
        let faults = std::thread::spawn(faults_of_the_second_round)
            .join()
            .unwrap();
        // 2 MiB faulted in again would be 512 faults.
        assert!(faults < 64, "{faults} page faults reusing freed chunks");
    }

    #[test]
    fn only_the_binarys_own_unwritten_code_is_released() {
        let found = code_mappings(SMAPS, Path::new("/opt/depot/bin/depot"));
        assert_eq!(found, vec![(0x5581a2200000, 0x5581a3e00000)]);
    }

    #[test]
    fn a_path_with_spaces_is_matched_whole() {
        let found = code_mappings(SMAPS, Path::new("/srv/my depot/depot (deleted)"));
        assert_eq!(found, vec![(0x1000, 0x2000)]);
        assert!(code_mappings(SMAPS, Path::new("/srv/my depot/depot")).is_empty());
    }

    #[test]
    fn the_running_binarys_code_is_found() {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let exe = std::env::current_exe().unwrap();
        assert!(!code_mappings(&smaps, &exe).is_empty(), "{}", exe.display());
    }

    #[test]
    fn a_mapping_without_its_anonymous_count_is_left_alone() {
        let maps = "1000-2000 r-xp 00000000 fd:01 1 /opt/depot/bin/depot\n";
        assert!(code_mappings(maps, Path::new("/opt/depot/bin/depot")).is_empty());
    }

    /// The resident KiB of the mapping that starts at `start`, from
    /// `/proc/self/smaps`.
    fn resident_kib(start: usize) -> u64 {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let header = format!("{start:x}-");
        let block = &smaps[smaps.find(&header).expect("the mapping is listed")..];
        let line = block.lines().find(|line| line.starts_with("Rss:")).unwrap();
        line.split_ascii_whitespace()
            .nth(1)
            .unwrap()
            .parse()
            .unwrap()
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn released_pages_leave_the_process_and_read_back_the_same() {
        use std::os::fd::AsRawFd;

        const LEN: usize = 1 << 20;
        let bytes: Vec<u8> = (0..LEN).map(|i| (i % 251) as u8).collect();
        let file = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut &file, &bytes).unwrap();
        // SAFETY: a fresh read-only private mapping of a file of LEN bytes,
        // unmapped before the test ends and read only through `mapped`.
        let start = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                LEN,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                file.as_raw_fd(),
                0,
            )
        };
        assert_ne!(start, libc::MAP_FAILED);
        // SAFETY: the mapping is LEN readable bytes and lives until munmap.
        let mapped = unsafe { std::slice::from_raw_parts(start as *const u8, LEN) };
        assert!(mapped == bytes.as_slice());
        assert_eq!(resident_kib(start as usize), (LEN / 1024) as u64);

        // SAFETY: a private file mapping the process never wrote.
        unsafe { release_file_pages(start as usize, LEN) };
        assert_eq!(resident_kib(start as usize), 0, "no page left mapped");
        assert!(mapped == bytes.as_slice(), "the file's bytes read back");

        // SAFETY: the mapping made above; `mapped` is not used after this.
        assert_eq!(unsafe { libc::munmap(start, LEN) }, 0);
    }
}
