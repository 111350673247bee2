//! Cheap structural checks of an archive file that never decompress it: `list` must stay fast over many
//! large archives, yet still call a cut-off file damaged.
//!
//! - zstd: walk the frames' block headers (one 3-byte read per block) and require the last frame to end, with
//!   its checksum, exactly at the end of the file.
//! - xz: the stream footer must be the last 12 bytes (magic `YZ`, a valid CRC32, the header's flags).
//! - tar: the size is a multiple of 512 and the file ends with the two zero blocks of the end marker.
//! - gzip: a deflate stream cannot be walked without inflating it, so only its header is checked; a cut gzip
//!   archive is recognized by the size recorded when it was verified (see `inspect::state`).

use crate::config::Compression;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// Outcome of a structural check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Structure {
    /// The container's framing is complete.
    Complete,
    /// The framing is broken: cut off, or bytes that do not belong.
    Broken(String),
    /// This format cannot be checked without decompressing it (gzip).
    Unchecked,
}

/// Check the framing of `file` (of `len` bytes), compressed as `compression` (from its magic bytes).
pub fn structure(file: &File, len: u64, compression: Compression) -> io::Result<Structure> {
    match compression {
        Compression::Zstd => zstd_frames(file, len),
        Compression::Xz => xz_footer(file, len),
        Compression::None => tar_end(file, len),
        Compression::Gzip => Ok(if len < 18 {
            Structure::Broken(too_short(len))
        } else {
            Structure::Unchecked
        }),
    }
}

fn too_short(len: u64) -> String {
    format!("cut off: {len} bytes is shorter than the smallest complete stream")
}

fn read_at<const N: usize>(file: &File, pos: u64) -> io::Result<[u8; N]> {
    let mut buf = [0u8; N];
    file.read_exact_at(&mut buf, pos)?;
    Ok(buf)
}

const ZSTD_MAGIC: u32 = 0xFD2F_B528;

fn zstd_frames(file: &File, len: u64) -> io::Result<Structure> {
    let mut pos = 0u64;
    let cut = |what: &str, at: u64| {
        Ok(Structure::Broken(format!(
            "cut off at byte {len}: {what} at byte {at} runs past the end"
        )))
    };
    while pos < len {
        if len - pos < 4 {
            return Ok(Structure::Broken(format!(
                "{} stray bytes at byte {pos} after the last zstd frame",
                len - pos
            )));
        }
        let magic = u32::from_le_bytes(read_at::<4>(file, pos)?);
        if magic & 0xFFFF_FFF0 == 0x184D_2A50 {
            // Skippable frame: magic, 4-byte size, payload.
            if len - pos < 8 {
                return cut("a skippable frame header", pos);
            }
            let size = u32::from_le_bytes(read_at::<4>(file, pos + 4)?) as u64;
            pos += 8 + size;
            if pos > len {
                return cut("a skippable frame", pos - 8 - size);
            }
            continue;
        }
        if magic != ZSTD_MAGIC {
            return Ok(Structure::Broken(format!(
                "no zstd frame at byte {pos} (bytes that do not belong)"
            )));
        }
        let frame_start = pos;
        if len - pos < 5 {
            return cut("a frame header", frame_start);
        }
        let [fhd] = read_at::<1>(file, pos + 4)?;
        let single_segment = fhd & 0x20 != 0;
        let checksum = fhd & 0x04 != 0;
        let dict_id = [0u64, 1, 2, 4][(fhd & 3) as usize];
        let fcs = match fhd >> 6 {
            0 => u64::from(single_segment),
            1 => 2,
            2 => 4,
            _ => 8,
        };
        let window = u64::from(!single_segment);
        pos += 5 + window + dict_id + fcs;
        loop {
            if pos + 3 > len {
                return cut("a block header", pos.min(len));
            }
            let b = read_at::<3>(file, pos)?;
            let header = u32::from(b[0]) | u32::from(b[1]) << 8 | u32::from(b[2]) << 16;
            let last = header & 1 != 0;
            let size = u64::from(header >> 3);
            let content = match (header >> 1) & 3 {
                0 | 2 => size, // raw, compressed
                1 => 1,        // RLE: one byte repeated
                _ => {
                    return Ok(Structure::Broken(format!(
                        "invalid zstd block header at byte {pos}"
                    )));
                }
            };
            pos += 3 + content;
            if last {
                break;
            }
        }
        if checksum {
            pos += 4;
        }
        if pos > len {
            return cut("the zstd frame", frame_start);
        }
    }
    if len == 0 {
        return Ok(Structure::Broken(too_short(0)));
    }
    Ok(Structure::Complete)
}

/// CRC-32 (IEEE), as xz uses for its headers; bitwise, since it only ever covers a few bytes here.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn xz_footer(file: &File, len: u64) -> io::Result<Structure> {
    if len < 32 {
        return Ok(Structure::Broken(too_short(len)));
    }
    // Stream padding (zero bytes in multiples of four) may follow the footer.
    let mut end = len;
    while end >= 44 && read_at::<4>(file, end - 4)? == [0; 4] {
        end -= 4;
    }
    let header = read_at::<12>(file, 0)?;
    let footer = read_at::<12>(file, end - 12)?;
    if &footer[10..12] != b"YZ" {
        return Ok(Structure::Broken(format!(
            "cut off at byte {len}: the xz stream footer is missing"
        )));
    }
    let stored = u32::from_le_bytes([footer[0], footer[1], footer[2], footer[3]]);
    if crc32(&footer[4..10]) != stored || footer[8..10] != header[6..8] {
        return Ok(Structure::Broken(format!(
            "the xz stream footer at byte {} is damaged",
            end - 12
        )));
    }
    // The index the footer points to must start with its indicator byte 0x00.
    let backward = (u64::from(u32::from_le_bytes([
        footer[4], footer[5], footer[6], footer[7],
    ])) + 1)
        * 4;
    match (end - 12).checked_sub(backward) {
        Some(at) if at >= 12 && read_at::<1>(file, at)? == [0] => Ok(Structure::Complete),
        _ => Ok(Structure::Broken(
            "the xz stream footer points to no index (damaged or cut)".into(),
        )),
    }
}

fn tar_end(file: &File, len: u64) -> io::Result<Structure> {
    if len < 1024 {
        return Ok(Structure::Broken(too_short(len)));
    }
    if len % 512 != 0 {
        return Ok(Structure::Broken(format!(
            "cut off at byte {len}: not a whole number of 512-byte tar blocks"
        )));
    }
    let tail = {
        let mut buf = vec![0u8; 1024];
        file.read_exact_at(&mut buf, len - 1024)?;
        buf
    };
    if tail.iter().any(|b| *b != 0) {
        return Ok(Structure::Broken(format!(
            "cut off at byte {len}: the tar end marker (two zero blocks) is missing"
        )));
    }
    Ok(Structure::Complete)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn check(data: &[u8], c: Compression) -> Structure {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(data).unwrap();
        structure(&f, data.len() as u64, c).unwrap()
    }

    fn zstd_bytes(data: &[u8], checksum: bool, threads: u32) -> Vec<u8> {
        let mut e = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        e.include_checksum(checksum).unwrap();
        if threads > 1 {
            e.multithread(threads).unwrap();
        }
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn sample() -> Vec<u8> {
        // Compressible and incompressible parts, several blocks.
        let mut v: Vec<u8> = (0..400_000u32)
            .flat_map(|i| format!("line {i}\n").into_bytes())
            .collect();
        let mut x = 0x1234_5678u32;
        v.extend((0..300_000).map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        }));
        v
    }

    #[test]
    fn zstd_complete_and_every_cut_is_broken() {
        let data = sample();
        for (checksum, threads) in [(true, 1), (false, 1), (true, 2)] {
            let z = zstd_bytes(&data, checksum, threads);
            assert_eq!(check(&z, Compression::Zstd), Structure::Complete);
            for cut in [1, 3, 4, 5, 100, z.len() / 2, z.len() - 4, z.len() - 1] {
                assert!(
                    matches!(check(&z[..cut], Compression::Zstd), Structure::Broken(_)),
                    "cut at {cut}"
                );
            }
            let mut two = z.clone();
            two.extend_from_slice(&z);
            assert_eq!(
                check(&two, Compression::Zstd),
                Structure::Complete,
                "two frames"
            );
            let mut junk = z.clone();
            junk.extend_from_slice(b"garbage!");
            assert!(matches!(
                check(&junk, Compression::Zstd),
                Structure::Broken(_)
            ));
        }
    }

    #[test]
    fn xz_footer_and_cuts() {
        let data = sample();
        let mut e = liblzma::write::XzEncoder::new(Vec::new(), 1);
        e.write_all(&data).unwrap();
        let x = e.finish().unwrap();
        assert_eq!(check(&x, Compression::Xz), Structure::Complete);
        for cut in [10, x.len() / 2, x.len() - 1] {
            assert!(
                matches!(check(&x[..cut], Compression::Xz), Structure::Broken(_)),
                "cut at {cut}"
            );
        }
        let mut padded = x.clone();
        padded.extend_from_slice(&[0; 8]);
        assert_eq!(check(&padded, Compression::Xz), Structure::Complete);
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn tar_end_marker() {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(3);
        h.set_cksum();
        b.append_data(&mut h, "a", &b"abc"[..]).unwrap();
        let t = b.into_inner().unwrap();
        assert_eq!(check(&t, Compression::None), Structure::Complete);
        assert!(matches!(
            check(&t[..1024], Compression::None),
            Structure::Broken(_)
        ));
        assert!(matches!(
            check(&t[..t.len() - 100], Compression::None),
            Structure::Broken(_)
        ));
        assert_eq!(
            check(
                &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6, 7, 8],
                Compression::Gzip
            ),
            Structure::Unchecked
        );
    }
}
