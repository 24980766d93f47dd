//! Clustered vectors of low intrinsic dimension for the store bench (a stand-in for embeddings
//! at sizes no real-text collection here has).

/// A deterministic generator of clustered vectors of low intrinsic dimension, as embeddings have:
/// a random centre, plus a mix of `LATENT` directions shared by all vectors, plus a little
/// isotropic noise. (Isotropic noise alone in 1024 dimensions makes every neighbour beyond the
/// first few a near-tie, which no index and no real embedding has.)
pub struct Vectors {
    state: u64,
    centres: Vec<Vec<f32>>,
    latent: Vec<Vec<f32>>,
}

const LATENT: usize = 16;

impl Vectors {
    pub fn new(clusters: usize, dimension: usize) -> Self {
        let mut vectors = Self { state: 0x9E37_79B9_7F4A_7C15, centres: Vec::new(), latent: Vec::new() };
        vectors.centres = (0..clusters).map(|_| vectors.direction(dimension)).collect();
        vectors.latent = (0..LATENT).map(|_| vectors.direction(dimension)).collect();
        vectors
    }

    fn uniform(&mut self) -> f32 {
        self.state = self.state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    fn direction(&mut self, dimension: usize) -> Vec<f32> {
        (0..dimension).map(|_| self.uniform()).collect()
    }

    /// The `i`-th vector of a stream: near centre `i % clusters`, its mix from this generator.
    pub fn next(&mut self, i: usize) -> Vec<f32> {
        let mut vector = self.centres[i % self.centres.len()].clone();
        for k in 0..LATENT {
            let weight = 1.5 * self.uniform();
            for (v, l) in vector.iter_mut().zip(&self.latent[k]) {
                *v += weight * l;
            }
        }
        for v in &mut vector {
            *v += 0.1 * self.uniform();
        }
        vector
    }
}
