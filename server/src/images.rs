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
}
