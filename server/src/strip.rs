//! The copy of a photo others download: without the location and camera metadata (EXIF,
//! XMP, IPTC, comments), pixels untouched. JPEG, PNG and WebP lose the segments or chunks
//! that hold it (the orientation is written back, so the photo stays upright); HEIC/HEIF and
//! AVIF keep their layout and have their metadata items' bytes overwritten with zeros. A
//! file whose structure is not understood is reported as such, so the caller can withhold
//! it rather than pass on what it could not clean.

use std::io::Cursor;

use image::{ImageDecoder, ImageReader, metadata::Orientation};

use crate::images::Kind;

/// A TIFF block (as EXIF holds it) with one tag: the orientation.
fn orientation_tiff(o: u8) -> Vec<u8> {
    let mut t = Vec::with_capacity(26);
    t.extend_from_slice(b"MM\0\x2a\0\0\0\x08"); // big-endian, first IFD at 8
    t.extend_from_slice(&1u16.to_be_bytes()); // one entry
    t.extend_from_slice(&0x0112u16.to_be_bytes()); // Orientation
    t.extend_from_slice(&3u16.to_be_bytes()); // SHORT
    t.extend_from_slice(&1u32.to_be_bytes()); // count
    t.extend_from_slice(&u16::from(o).to_be_bytes());
    t.extend_from_slice(&[0, 0]);
    t.extend_from_slice(&0u32.to_be_bytes()); // no next IFD
    t
}

/// What became of a photo's metadata.
#[derive(Debug, PartialEq, Eq)]
pub enum Stripped {
    /// The format carries none, or this photo had none: the original is what others get.
    Clean,
    /// The photo without its metadata.
    Copy(Vec<u8>),
    /// The file's structure is not understood, so it may carry metadata that could not be
    /// taken out: others must not get the original.
    Unknown,
}

/// The photo without its metadata — EXIF (location, camera, time), XMP, IPTC, comments —
/// keeping pixels, colour profile and orientation untouched (no re-encoding). When the
/// structure is not understood the answer is [`Stripped::Unknown`], never the original.
pub fn without_metadata(bytes: &[u8], kind: Kind) -> Stripped {
    let out = match kind {
        Kind::Jpeg => strip_jpeg(bytes),
        Kind::Png => strip_png(bytes),
        Kind::Webp => strip_webp(bytes),
        Kind::Heif => heif::strip(bytes),
        // TIFF (and camera raw files built on it) carries EXIF in its own structure.
        Kind::OtherImage if bytes.starts_with(b"II*\0") || bytes.starts_with(b"MM\0*") => None,
        // GIF and BMP have no place for a location.
        Kind::OtherImage => return Stripped::Clean,
    };
    match out {
        None => Stripped::Unknown,
        Some(out) if out == bytes => Stripped::Clean,
        Some(out) => Stripped::Copy(out),
    }
}

fn orientation_of(bytes: &[u8]) -> u8 {
    ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .ok()
        .and_then(|r| r.into_decoder().ok())
        .and_then(|mut d| d.orientation().ok())
        .map_or(1, Orientation::to_exif)
}

fn strip_jpeg(b: &[u8]) -> Option<Vec<u8>> {
    let start = b.get(..2)?;
    let orientation = orientation_of(b);
    let mut out = Vec::with_capacity(b.len());
    out.extend_from_slice(start);
    if orientation != 1 {
        let tiff = orientation_tiff(orientation);
        out.extend_from_slice(&[0xFF, 0xE1]);
        out.extend_from_slice(&((2 + 6 + tiff.len()) as u16).to_be_bytes());
        out.extend_from_slice(b"Exif\0\0");
        out.extend_from_slice(&tiff);
    }
    let mut i = 2;
    loop {
        if i + 4 > b.len() || b[i] != 0xFF {
            return None;
        }
        let marker = b[i + 1];
        if marker == 0xDA {
            // Start of scan: the entropy-coded data and the rest are copied as they are.
            out.extend_from_slice(&b[i..]);
            return Some(out);
        }
        let len = usize::from(u16::from_be_bytes([b[i + 2], b[i + 3]]));
        let end = i + 2 + len;
        if len < 2 || end > b.len() {
            return None;
        }
        // APP1 (EXIF, XMP), APP12, APP13 (IPTC), comments go; JFIF, ICC (APP2), Adobe stay.
        if !matches!(marker, 0xE1 | 0xEC | 0xED | 0xFE) {
            out.extend_from_slice(&b[i..end]);
        }
        i = end;
    }
}

fn strip_png(b: &[u8]) -> Option<Vec<u8>> {
    let mut out = b.get(..8)?.to_vec();
    let mut i = 8;
    while i + 12 <= b.len() {
        let len = u32::from_be_bytes(b[i..i + 4].try_into().ok()?) as usize;
        let end = i.checked_add(12)?.checked_add(len)?;
        if end > b.len() {
            return None;
        }
        let kind = &b[i + 4..i + 8];
        if !matches!(kind, b"eXIf" | b"tEXt" | b"zTXt" | b"iTXt" | b"tIME") {
            out.extend_from_slice(&b[i..end]);
        }
        i = end;
    }
    (i == b.len()).then_some(out)
}

fn strip_webp(b: &[u8]) -> Option<Vec<u8>> {
    let orientation = orientation_of(b);
    let mut chunks = Vec::new();
    let mut i = 12;
    while i + 8 <= b.len() {
        let len = u32::from_le_bytes(b[i + 4..i + 8].try_into().ok()?) as usize;
        let end = i.checked_add(8)?.checked_add(len + (len & 1))?.min(b.len());
        chunks.push((&b[i..i + 4], &b[i..end]));
        i = end;
    }
    let mut body = Vec::with_capacity(b.len());
    let has_vp8x = chunks.iter().any(|(k, _)| *k == b"VP8X");
    for (kind, chunk) in &chunks {
        match *kind {
            b"EXIF" | b"XMP " => {}
            b"VP8X" => {
                let mut c = chunk.to_vec();
                if c.len() > 8 {
                    c[8] &= !0x04; // no XMP
                    if orientation == 1 {
                        c[8] &= !0x08; // no EXIF
                    }
                }
                body.extend_from_slice(&c);
            }
            _ => body.extend_from_slice(chunk),
        }
    }
    if orientation != 1 && has_vp8x {
        let tiff = orientation_tiff(orientation);
        body.extend_from_slice(b"EXIF");
        body.extend_from_slice(&(tiff.len() as u32).to_le_bytes());
        body.extend_from_slice(&tiff);
    }
    let mut out = Vec::with_capacity(body.len() + 12);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&((body.len() + 4) as u32).to_le_bytes());
    out.extend_from_slice(b"WEBP");
    out.extend_from_slice(&body);
    Some(out)
}

/// HEIC/HEIF and AVIF (ISO base media files): metadata lives in items of the `meta` box —
/// `Exif`, and `mime` items of XMP — whose bytes `iloc` places in `mdat` or `idat`. Those
/// bytes are overwritten with zeros in place, so no offset moves and the image decodes as
/// before; the orientation lives in the `irot`/`imir` properties, which stay.
mod heif {
    struct Reader<'a> {
        b: &'a [u8],
        at: usize,
    }

    impl<'a> Reader<'a> {
        fn take(&mut self, n: usize) -> Option<&'a [u8]> {
            let s = self.b.get(self.at..self.at.checked_add(n)?)?;
            self.at += n;
            Some(s)
        }
        fn uint(&mut self, n: usize) -> Option<u64> {
            Some(self.take(n)?.iter().fold(0u64, |v, &d| (v << 8) | u64::from(d)))
        }
        fn u8(&mut self) -> Option<u8> {
            Some(self.take(1)?[0])
        }
        fn u16(&mut self) -> Option<u64> {
            self.uint(2)
        }
        fn u32(&mut self) -> Option<u64> {
            self.uint(4)
        }
        /// A NUL-terminated string.
        fn cstr(&mut self) -> Option<&'a [u8]> {
            let rest = self.b.get(self.at..)?;
            let n = rest.iter().position(|&c| c == 0)?;
            self.at += n + 1;
            Some(&rest[..n])
        }
    }

    /// The boxes in `b[range]`: (type, content start, end), absolute offsets.
    fn boxes(b: &[u8], start: usize, end: usize) -> Option<Vec<([u8; 4], usize, usize)>> {
        let mut out = Vec::new();
        let mut at = start;
        while at < end {
            let mut r = Reader { b: &b[..end], at };
            let size = r.u32()?;
            let kind: [u8; 4] = r.take(4)?.try_into().ok()?;
            let size = match size {
                0 => (end - at) as u64,
                1 => r.uint(8)?,
                n => n,
            };
            let box_end = at.checked_add(usize::try_from(size).ok()?)?;
            if box_end > end || box_end < r.at {
                return None;
            }
            out.push((kind, r.at, box_end));
            at = box_end;
        }
        Some(out)
    }

    /// Ids of the items that hold metadata, from `iinf`.
    fn metadata_items(b: &[u8], start: usize, end: usize) -> Option<Vec<u64>> {
        let mut r = Reader { b: &b[..end], at: start };
        let version = r.u8()?;
        r.take(3)?;
        let _count = if version == 0 { r.u16()? } else { r.u32()? };
        let mut ids = Vec::new();
        for (kind, s, e) in boxes(b, r.at, end)? {
            if &kind != b"infe" {
                continue;
            }
            let mut r = Reader { b: &b[..e], at: s };
            let version = r.u8()?;
            r.take(3)?;
            if version < 2 {
                // Entries of the first versions name no item type: not understood.
                return None;
            }
            let id = if version == 2 { r.u16()? } else { r.u32()? };
            let _protection = r.u16()?;
            let item_type = r.take(4)?;
            let _name = r.cstr()?;
            let metadata = match item_type {
                b"Exif" => true,
                b"mime" => {
                    let content_type = String::from_utf8_lossy(r.cstr()?).to_ascii_lowercase();
                    content_type.contains("xmp") || content_type.contains("rdf+xml")
                }
                _ => false,
            };
            if metadata {
                ids.push(id);
            }
        }
        Some(ids)
    }

    /// The byte ranges (absolute) of `items`, from `iloc`; `idat` is the `idat` box's content.
    fn item_ranges(
        b: &[u8],
        start: usize,
        end: usize,
        items: &[u64],
        idat: Option<(usize, usize)>,
    ) -> Option<Vec<(usize, usize)>> {
        let mut r = Reader { b: &b[..end], at: start };
        let version = r.u8()?;
        r.take(3)?;
        if version > 2 {
            return None;
        }
        let sizes = r.u16()?;
        let (offset_size, length_size) = ((sizes >> 12) as usize, ((sizes >> 8) & 0xF) as usize);
        let (base_size, index_size) = (((sizes >> 4) & 0xF) as usize, (sizes & 0xF) as usize);
        let count = if version < 2 { r.u16()? } else { r.u32()? };
        let mut ranges = Vec::new();
        let mut found = 0;
        for _ in 0..count {
            let id = if version < 2 { r.u16()? } else { r.u32()? };
            let method = if version >= 1 { r.u16()? & 0xF } else { 0 };
            let data_ref = r.u16()?;
            let base = r.uint(base_size)?;
            let extents = r.u16()?;
            let wanted = items.contains(&id);
            if wanted {
                found += 1;
                // Bytes in another file, or built from other items: not understood.
                if data_ref != 0 || method > 1 {
                    return None;
                }
            }
            for _ in 0..extents {
                if version >= 1 && index_size > 0 {
                    r.uint(index_size)?;
                }
                let offset = r.uint(offset_size)?;
                let length = r.uint(length_size)?;
                if !wanted {
                    continue;
                }
                let (origin, limit) = match method {
                    0 => (0, b.len()),
                    _ => idat?,
                };
                let from = origin.checked_add(usize::try_from(base.checked_add(offset)?).ok()?)?;
                let to = if length == 0 { limit } else { from.checked_add(usize::try_from(length).ok()?)? };
                if from > to || to > limit {
                    return None;
                }
                ranges.push((from, to));
            }
        }
        (found == items.len()).then_some(ranges)
    }

    pub(super) fn strip(b: &[u8]) -> Option<Vec<u8>> {
        let top = boxes(b, 0, b.len())?;
        // An image sequence (or a file with more than one `meta`) is not understood here.
        if top.iter().any(|(k, ..)| k == b"moov") || top.iter().filter(|(k, ..)| k == b"meta").count() != 1 {
            return None;
        }
        let &(_, s, e) = top.iter().find(|(k, ..)| k == b"meta")?;
        let inner = boxes(b, s.checked_add(4).filter(|&s| s <= e)?, e)?;
        let find = |name: &[u8; 4]| inner.iter().find(|(k, ..)| k == name).map(|&(_, s, e)| (s, e));
        let Some((is, ie)) = find(b"iinf") else { return Some(b.to_vec()) };
        let items = metadata_items(b, is, ie)?;
        if items.is_empty() {
            return Some(b.to_vec());
        }
        let (ls, le) = find(b"iloc")?;
        let ranges = item_ranges(b, ls, le, &items, find(b"idat"))?;
        let mut out = b.to_vec();
        for (from, to) in ranges {
            out[from..to].fill(0);
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orientation_block_is_a_valid_exif_tiff() {
        let t = orientation_tiff(6);
        assert_eq!(Orientation::from_exif_chunk(&t), Orientation::from_exif(6));
    }

    #[test]
    fn files_not_understood_are_never_passed_on_as_clean() {
        let junk = [&b"\0\0\0\x18ftypheic\0\0\0\0mif1heic"[..], &[7u8; 100]].concat();
        assert_eq!(without_metadata(&junk, Kind::Heif), Stripped::Unknown);
        assert_eq!(without_metadata(b"II*\0 a tiff with GPS", Kind::OtherImage), Stripped::Unknown);
        assert_eq!(without_metadata(b"GIF89a....", Kind::OtherImage), Stripped::Clean);
        assert_eq!(without_metadata(&[0xFF, 0xD8, 0xFF, 0xE1, 0xFF, 0xFF, 1, 2], Kind::Jpeg), Stripped::Unknown);
    }
}
