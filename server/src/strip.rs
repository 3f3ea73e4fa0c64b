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
        Kind::OtherImage if bytes.starts_with(b"GIF8") => strip_gif(bytes),
        // BMP has no place for a location.
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
    let (keep, end) = jpeg_image(b)?;
    // What follows the image's end is never passed on; a trailer not understood may hold
    // anything (a second image's EXIF, a video with its own location), so it fails closed.
    if !trailer_understood(&b[end..]) {
        return None;
    }
    let orientation = orientation_of(b);
    let mut out = Vec::with_capacity(end);
    out.extend_from_slice(&b[..2]);
    if orientation != 1 {
        let tiff = orientation_tiff(orientation);
        out.extend_from_slice(&[0xFF, 0xE1]);
        out.extend_from_slice(&((2 + 6 + tiff.len()) as u16).to_be_bytes());
        out.extend_from_slice(b"Exif\0\0");
        out.extend_from_slice(&tiff);
    }
    for r in keep {
        out.extend_from_slice(&b[r]);
    }
    Some(out)
}

/// Walks the JPEG image that starts at `b[0]` (its SOI) to its end of image: the byte ranges
/// to keep after the SOI — every segment but the metadata ones, the entropy-coded data, the
/// EOI — and the offset just past the EOI. None: not a JPEG as understood here.
fn jpeg_image(b: &[u8]) -> Option<(Vec<std::ops::Range<usize>>, usize)> {
    if b.get(..2)? != [0xFF, 0xD8] {
        return None;
    }
    let mut keep = Vec::new();
    let mut i = 2;
    loop {
        if *b.get(i)? != 0xFF {
            return None;
        }
        // Fill bytes may stand before a marker.
        while *b.get(i + 1)? == 0xFF {
            i += 1;
        }
        let marker = b[i + 1];
        match marker {
            0xD9 => {
                keep.push(i..i + 2);
                return Some((keep, i + 2));
            }
            0x00 | 0xD8 => return None,
            0x01 | 0xD0..=0xD7 => {
                keep.push(i..i + 2);
                i += 2;
                continue;
            }
            _ => {}
        }
        let len = usize::from(u16::from_be_bytes([*b.get(i + 2)?, *b.get(i + 3)?]));
        let end = i + 2 + len;
        if len < 2 || end > b.len() {
            return None;
        }
        // APP1 (EXIF, XMP), APP12, APP13 (IPTC), comments go, and the MPF index (APP2) of
        // images that are not passed on; JFIF, ICC (APP2), Adobe and the coding stay.
        let mpf = marker == 0xE2 && b[i + 4..end].starts_with(b"MPF\0");
        if !matches!(marker, 0xE1 | 0xEC | 0xED | 0xFE) && !mpf {
            keep.push(i..end);
        }
        i = end;
        if marker == 0xDA {
            // Entropy-coded data, up to the next marker (stuffed bytes and restarts are data).
            let start = i;
            loop {
                i += b.get(i..)?.iter().position(|&x| x == 0xFF)?;
                match *b.get(i + 1)? {
                    0x00 | 0xD0..=0xD7 => i += 2,
                    _ => break,
                }
            }
            keep.push(start..i);
        }
    }
}

/// Whether what follows a JPEG's end of image is made only of what phones write there:
/// further JPEG images (the MPF's second image, a depth map), a motion photo's video (an MP4,
/// after Samsung's `MotionPhoto_Data` mark, with Samsung's `SEFH`…`SEFT` index at the end),
/// and padding.
fn trailer_understood(mut t: &[u8]) -> bool {
    // Samsung's index at the very end: `SEFH` … then its length (LE) and `SEFT`.
    if t.len() >= 8 && t.ends_with(b"SEFT") {
        let len = u32::from_le_bytes([t[t.len() - 8], t[t.len() - 7], t[t.len() - 6], t[t.len() - 5]]) as usize;
        let Some(start) = t.len().checked_sub(8 + len) else { return false };
        if !t[start..].starts_with(b"SEFH") {
            return false;
        }
        t = &t[..start];
    }
    loop {
        if t.iter().all(|&x| x == 0) {
            return true;
        }
        if t.starts_with(&[0xFF, 0xD8]) {
            match jpeg_image(t) {
                Some((_, end)) => t = &t[end..],
                None => return false,
            }
        } else if let Some(rest) = t.strip_prefix(b"MotionPhoto_Data") {
            t = rest;
        } else if t.get(4..8) == Some(b"ftyp") {
            // An MP4: boxes to the end.
            while t.len() >= 8 {
                let size = u32::from_be_bytes([t[0], t[1], t[2], t[3]]) as u64;
                let size = match size {
                    0 => t.len() as u64,
                    1 if t.len() >= 16 => u64::from_be_bytes(t[8..16].try_into().unwrap_or_default()),
                    _ => size,
                };
                if size < 8 || size > t.len() as u64 {
                    return false;
                }
                t = &t[size as usize..];
            }
            if !t.is_empty() {
                return false;
            }
        } else {
            return false;
        }
    }
}

/// A GIF without its comments and application extensions (XMP rides in one), keeping the
/// loop count of an animation; anything after its trailer is dropped.
fn strip_gif(b: &[u8]) -> Option<Vec<u8>> {
    if !(b.starts_with(b"GIF87a") || b.starts_with(b"GIF89a")) {
        return None;
    }
    let table = |flags: u8| if flags & 0x80 != 0 { 3usize << ((flags & 7) + 1) } else { 0 };
    let mut i = 13 + table(*b.get(10)?);
    let mut out = b.get(..i)?.to_vec();
    loop {
        match *b.get(i)? {
            0x3B => {
                out.push(0x3B);
                return Some(out);
            }
            0x21 => {
                let label = *b.get(i + 1)?;
                let end = gif_blocks_end(b, i + 2)?;
                let keep = match label {
                    // Graphic control (timing, transparency) and plain text (drawn).
                    0xF9 | 0x01 => true,
                    0xFF => gif_loop_count(&b[i + 2..end]),
                    _ => false,
                };
                if keep {
                    out.extend_from_slice(&b[i..end]);
                }
                i = end;
            }
            0x2C => {
                // Image descriptor, local colour table, LZW code size, data.
                let data = i + 10 + table(*b.get(i + 9)?) + 1;
                let end = gif_blocks_end(b, data)?;
                out.extend_from_slice(&b[i..end]);
                i = end;
            }
            _ => return None,
        }
    }
}

/// The offset past a run of GIF data sub-blocks starting at `i` (ending with an empty one).
fn gif_blocks_end(b: &[u8], mut i: usize) -> Option<usize> {
    loop {
        let n = usize::from(*b.get(i)?);
        i += 1 + n;
        if n == 0 {
            return Some(i);
        }
        if i > b.len() {
            return None;
        }
    }
}

/// Whether an application extension's blocks are an animation's loop count and nothing else.
fn gif_loop_count(blocks: &[u8]) -> bool {
    blocks.len() == 17
        && blocks[0] == 11
        && (&blocks[1..12] == b"NETSCAPE2.0" || &blocks[1..12] == b"ANIMEXTS1.0")
        && blocks[12] == 3
        && blocks[13] == 1
        && blocks[16] == 0
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
        assert_eq!(without_metadata(b"GIF89a....", Kind::OtherImage), Stripped::Unknown);
        assert_eq!(without_metadata(&[0xFF, 0xD8, 0xFF, 0xE1, 0xFF, 0xFF, 1, 2], Kind::Jpeg), Stripped::Unknown);
    }

    fn segment(marker: u8, body: &[u8]) -> Vec<u8> {
        let mut s = vec![0xFF, marker];
        s.extend_from_slice(&((body.len() + 2) as u16).to_be_bytes());
        s.extend_from_slice(body);
        s
    }

    /// A small real JPEG with a GPS-naming EXIF block and an MPF index.
    fn photo() -> Vec<u8> {
        let img = image::RgbImage::from_fn(16, 8, |x, _| image::Rgb([if x < 8 { 200 } else { 0 }, 0, 90]));
        let mut plain = Vec::new();
        image::codecs::jpeg::JpegEncoder::new(&mut plain).encode_image(&img).unwrap();
        [&plain[..2], &segment(0xE1, b"Exif\0\0MM\0* GPS 51.5N"), &segment(0xE2, b"MPF\0II*\0 index"), &plain[2..]]
            .concat()
    }

    fn has(b: &[u8], s: &[u8]) -> bool {
        b.windows(s.len()).any(|w| w == s)
    }

    #[test]
    fn a_jpeg_is_cut_at_its_end_of_image_and_known_trailers_go_with_it() {
        let primary = photo();
        let Stripped::Copy(alone) = without_metadata(&primary, Kind::Jpeg) else { panic!() };
        assert!(!has(&alone, b"GPS") && !has(&alone, b"MPF\0") && alone.ends_with(&[0xFF, 0xD9]));
        assert!(image::load_from_memory(&alone).is_ok(), "the same picture");
        // The MPF's second image (its own EXIF, location and all), then a depth map.
        let mpf = [&primary[..], &photo(), &photo()].concat();
        // Google's motion photo: an MP4 appended; Samsung's: a mark, the MP4, an index.
        let mp4 = [&b"\0\0\0\x10ftypmp42\0\0\0\0"[..], b"\0\0\0\x17mdatGPS 51.5N video"].concat();
        let google = [&primary[..], &mp4].concat();
        let sef = [&b"SEFH"[..], b"\x01\0\0\0 GPS in the index"].concat();
        let samsung =
            [&primary[..], b"MotionPhoto_Data", &mp4, &sef, &(sef.len() as u32).to_le_bytes(), b"SEFT"].concat();
        let padded = [&primary[..], &[0u8; 64]].concat();
        for (name, file) in [("mpf", mpf), ("google", google), ("samsung", samsung), ("padded", padded)] {
            assert_eq!(without_metadata(&file, Kind::Jpeg), Stripped::Copy(alone.clone()), "{name}");
        }
        // A trailer nobody documented may hold anything: the original is withheld.
        for trailer in [&b"GPS 51.5N 0.12W by an unknown app"[..], b"\0\0\0\x10ftypmp42 cut short", &[0xFF, 0xD8, 0xFF]]
        {
            let file = [&primary[..], trailer].concat();
            assert_eq!(without_metadata(&file, Kind::Jpeg), Stripped::Unknown, "{trailer:?}");
        }
        // No end of image at all.
        assert_eq!(without_metadata(&primary[..primary.len() - 2], Kind::Jpeg), Stripped::Unknown);
    }

    #[test]
    fn a_gif_loses_its_comments_and_application_extensions_but_not_its_loop() {
        let mut gif = b"GIF89a\x01\0\x01\0\x80\0\0\0\0\0\xff\xff\xff".to_vec();
        let looped = b"\x21\xff\x0bNETSCAPE2.0\x03\x01\0\0\0";
        gif.extend_from_slice(looped);
        gif.extend_from_slice(b"\x21\xfe\x0eGPS 51.5N here\0");
        gif.extend_from_slice(b"\x21\xff\x0bXMP DataXMP\x0b<gps>51</x>\0");
        gif.extend_from_slice(b"\x21\xf9\x04\x01\0\0\0\0");
        gif.extend_from_slice(b"\x2c\0\0\0\0\x01\0\x01\0\0\x02\x02\x44\x01\0");
        gif.extend_from_slice(b"\x3b trailing GPS 51.5N");
        let Stripped::Copy(out) = without_metadata(&gif, Kind::OtherImage) else { panic!() };
        assert!(!has(&out, b"GPS") && !has(&out, b"XMP") && !has(&out, b"<gps>"));
        assert!(has(&out, looped) && has(&out, b"\x21\xf9\x04") && out.ends_with(b"\x02\x02\x44\x01\0\x3b"));
        let plain = b"GIF89a\x01\0\x01\0\0\0\0\x2c\0\0\0\0\x01\0\x01\0\0\x02\x02\x44\x01\0\x3b".to_vec();
        assert_eq!(without_metadata(&plain, Kind::OtherImage), Stripped::Clean);
        assert_eq!(without_metadata(&gif[..40], Kind::OtherImage), Stripped::Unknown, "cut short");
    }
}
