//! What the server makes of an uploaded photo: thumbnails (256 and 1024 px on the longest
//! side, upright by the photo's EXIF orientation, JPEG without any metadata) and the copy
//! others download, without the location and camera metadata.
//!
//! Decoding is bounded ([`image::Limits`] and a pixel budget checked before decoding), so a
//! decompression bomb or a corrupt file gives a note and no thumbnails, never a crash. These
//! are blocking functions: the server runs them on a bounded pool of blocking threads.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageReader, codecs::jpeg::JpegEncoder, metadata::Orientation};

/// Bounds of the decoder.
#[derive(Clone, Copy, Debug)]
pub struct ImageLimits {
    /// Longest side accepted, in pixels.
    pub max_side: u32,
    /// Most pixels (width × height) accepted.
    pub max_pixels: u64,
    /// Most bytes the decoder may hold at once.
    pub max_alloc: u64,
}

impl Default for ImageLimits {
    fn default() -> Self {
        // A 12-megapixel phone photo is 4032 × 3024; 100 megapixels leaves room for any
        // camera and none for a bomb.
        ImageLimits { max_side: 20_000, max_pixels: 100_000_000, max_alloc: 512 * 1024 * 1024 }
    }
}

/// The formats a photo arrives in, by their first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Jpeg,
    Png,
    Webp,
    /// HEIC/HEIF or AVIF: recognized, not decoded here.
    Heif,
    /// Some other image format (GIF, TIFF, BMP): kept, not previewed.
    OtherImage,
}

pub fn sniff(head: &[u8]) -> Option<Kind> {
    if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Some(Kind::Jpeg);
    }
    if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Some(Kind::Png);
    }
    if head.len() >= 12 && &head[..4] == b"RIFF" && &head[8..12] == b"WEBP" {
        return Some(Kind::Webp);
    }
    if head.len() >= 12 && &head[4..8] == b"ftyp" {
        let brand = &head[8..12];
        if [b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1", b"avif", b"avis"]
            .iter()
            .any(|b| brand == *b)
        {
            return Some(Kind::Heif);
        }
    }
    if head.starts_with(b"GIF8") || head.starts_with(b"II*\0") || head.starts_with(b"MM\0*") || head.starts_with(b"BM")
    {
        return Some(Kind::OtherImage);
    }
    None
}

/// What processing made of one image.
#[derive(Debug, Default)]
pub struct Made {
    /// Upright size.
    pub width: u32,
    pub height: u32,
    /// (longest side, JPEG bytes), largest first.
    pub thumbnails: Vec<(u32, Vec<u8>)>,
}

/// Decodes `bytes` within `limits` and makes a JPEG thumbnail for each of `sizes` (longest
/// side, px). An image no larger than a size is encoded at its own size. The error is a
/// sentence for the file's `preview_note`.
pub fn thumbnails(bytes: &[u8], kind: Kind, sizes: &[u32], limits: ImageLimits) -> Result<Made, String> {
    match kind {
        Kind::Jpeg | Kind::Png | Kind::Webp => {}
        Kind::Heif => {
            return Err("HEIC/HEIF and AVIF photos are stored but not previewed: no maintained pure-Rust decoder \
                        exists; set the camera to JPEG (iOS: Settings › Camera › Formats › Most Compatible)"
                .into());
        }
        Kind::OtherImage => return Err("only JPEG, PNG and WebP images get thumbnails".into()),
    }
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|_| "the image could not be read".to_string())?;
    let mut l = image::Limits::default();
    l.max_image_width = Some(limits.max_side);
    l.max_image_height = Some(limits.max_side);
    l.max_alloc = Some(limits.max_alloc);
    reader.limits(l);
    let mut decoder = reader.into_decoder().map_err(describe)?;
    let (w, h) = decoder.dimensions();
    if u64::from(w) * u64::from(h) > limits.max_pixels {
        return Err(format!(
            "the image is {w} × {h} pixels; images of more than {} megapixels get no thumbnails",
            limits.max_pixels / 1_000_000
        ));
    }
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let mut img = DynamicImage::from_decoder(decoder).map_err(describe)?;
    img.apply_orientation(orientation);
    let mut made = Made { width: img.width(), height: img.height(), thumbnails: Vec::new() };
    let mut sizes = sizes.to_vec();
    sizes.sort_unstable_by(|a, b| b.cmp(a));
    // Each thumbnail from the next larger one: quicker, and as sharp.
    let mut source = img;
    for size in sizes {
        let scaled = if source.width().max(source.height()) > size { source.thumbnail(size, size) } else { source };
        made.thumbnails.push((size, jpeg(&scaled)?));
        source = scaled;
    }
    Ok(made)
}

fn describe(e: image::ImageError) -> String {
    match e {
        image::ImageError::Limits(_) => "the image is larger than this server decodes; it gets no thumbnails".into(),
        image::ImageError::Unsupported(_) => "this image's encoding is not supported; it gets no thumbnails".into(),
        _ => "the image is corrupt or truncated; it gets no thumbnails".into(),
    }
}

/// JPEG at quality 82, no metadata; transparency flattened onto white.
fn jpeg(img: &DynamicImage) -> Result<Vec<u8>, String> {
    let rgb = if img.color().has_alpha() {
        let rgba = img.to_rgba8();
        let mut out = image::RgbImage::new(rgba.width(), rgba.height());
        for (o, p) in out.pixels_mut().zip(rgba.pixels()) {
            let a = u16::from(p[3]);
            for c in 0..3 {
                o[c] = ((u16::from(p[c]) * a + 255 * (255 - a)) / 255) as u8;
            }
        }
        out
    } else {
        img.to_rgb8()
    };
    let mut buf = Vec::new();
    JpegEncoder::new_with_quality(&mut buf, 82).encode_image(&rgb).map_err(|_| "the thumbnail could not be encoded")?;
    Ok(buf)
}

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

/// The photo without its metadata — EXIF (location, camera, time), XMP, IPTC, comments —
/// keeping pixels, colour profile and orientation untouched (no re-encoding). `None` when
/// there was nothing to take out or the file's structure is not understood.
pub fn without_metadata(bytes: &[u8], kind: Kind) -> Option<Vec<u8>> {
    let out = match kind {
        Kind::Jpeg => strip_jpeg(bytes)?,
        Kind::Png => strip_png(bytes)?,
        Kind::Webp => strip_webp(bytes)?,
        Kind::Heif | Kind::OtherImage => return None,
    };
    (out.len() != bytes.len() || out != bytes).then_some(out)
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
    let orientation = orientation_of(b);
    let mut out = Vec::with_capacity(b.len());
    out.extend_from_slice(&b[..2]);
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
    let mut out = b[..8].to_vec();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_the_formats_photos_arrive_in() {
        assert_eq!(sniff(&[0xFF, 0xD8, 0xFF, 0xE0]), Some(Kind::Jpeg));
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n...."), Some(Kind::Png));
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 "), Some(Kind::Webp));
        assert_eq!(sniff(b"\0\0\0\x18ftypheic\0\0\0\0"), Some(Kind::Heif));
        assert_eq!(sniff(b"%PDF-1.7"), None);
    }

    #[test]
    fn orientation_block_is_a_valid_exif_tiff() {
        let t = orientation_tiff(6);
        assert_eq!(Orientation::from_exif_chunk(&t), Orientation::from_exif(6));
    }
}
