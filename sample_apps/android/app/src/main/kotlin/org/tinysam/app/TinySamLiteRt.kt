package org.tinysam.app

import org.tensorflow.lite.Delegate
import org.tensorflow.lite.Interpreter
import org.tensorflow.lite.gpu.GpuDelegate
import org.tensorflow.lite.nnapi.NnApiDelegate
import org.tinysam.core.BatchDecoder
import org.tinysam.core.DecoderOutput
import org.tinysam.core.DecoderPrompts
import org.tinysam.core.EncoderInput
import java.io.Closeable
import java.nio.FloatBuffer

/** Where LiteRT runs the networks. NPU goes through NNAPI, which hands supported ops to the vendor's NPU driver. */
enum class Accelerator { CPU, GPU, NPU }

/**
 * The three LiteRT artifacts (encoder, interactive decoder, batched everything decoder) behind the
 * runner contract of the Python pipeline: tensors named as in the manifest, fixed shapes.
 */
// Flat arrays travel as FloatBuffers: LiteRT copies buffers by element count, arrays only by matching shape.
private fun Map<String, FloatArray>.buffers(): Map<String, Any> = mapValues { FloatBuffer.wrap(it.value) }

class TinySamLiteRt(private val bundle: ArtifactBundle, accelerator: Accelerator) : Closeable {
    private val delegates = ArrayList<Delegate>()
    private val encoder = interpreter("encoder", accelerator)
    private val decoder = interpreter("decoder", accelerator)
    private val batchDecoder = interpreter("decoder_batch", accelerator)
    private val embeddingSide = bundle.imgSize / 16
    private val lowResSide = bundle.imgSize / 4

    private fun interpreter(role: String, accelerator: Accelerator): Interpreter {
        val options = Interpreter.Options()
        when (accelerator) {
            Accelerator.CPU -> options.setNumThreads(4)  // XNNPACK is LiteRT's default CPU path
            Accelerator.GPU -> options.addDelegate(GpuDelegate().also { delegates.add(it) })
            Accelerator.NPU -> options.addDelegate(NnApiDelegate().also { delegates.add(it) })
        }
        return Interpreter(bundle.map(role), options)
    }

    /** (1, 3, S, S) normalised planar image -> (1, 256, S/16, S/16) embedding. An NHWC encoder input is fed transposed. */
    fun encode(input: EncoderInput): FloatArray {
        val spec = bundle.artifacts.getValue("encoder").inputs.first()
        val s = input.side
        val tensor = if (spec.shape.size == 4 && spec.shape[3] == 3) {
            FloatArray(3 * s * s) { i -> input.tensor[(i % 3) * s * s + i / 3] }
        } else input.tensor
        val embedding = FloatArray(256 * embeddingSide * embeddingSide)
        encoder.runSignature(mapOf(spec.name to tensor).buffers(), mapOf("image_embeddings" to embedding).buffers())
        return embedding
    }

    /** One prompt (points padded to the decoder's count) -> 3 low-res masks and their predicted IoU. */
    fun decode(embedding: FloatArray, prompts: DecoderPrompts): DecoderOutput {
        val lowRes = FloatArray(3 * lowResSide * lowResSide)
        val iou = FloatArray(3)
        decoder.runSignature(
            mapOf("image_embeddings" to embedding, "point_coords" to prompts.coords, "point_labels" to prompts.labels,
                  "mask_input" to FloatArray(lowResSide * lowResSide), "has_mask_input" to FloatArray(1)).buffers(),
            mapOf("low_res_masks" to lowRes, "iou_predictions" to iou).buffers())
        return DecoderOutput(lowRes, iou, lowResSide)
    }

    /** Everything mode's decoder: fixed batch of single-point prompts; a short last batch is padded and trimmed. */
    fun batchDecoder(embedding: FloatArray): BatchDecoder = object : BatchDecoder {
        override fun decode(coords: FloatArray, labels: FloatArray, count: Int): DecoderOutput {
            val batch = bundle.everythingBatch
            val plane = lowResSide * lowResSide
            val lowRes = FloatArray(batch * 3 * plane)
            val iou = FloatArray(batch * 3)
            batchDecoder.runSignature(
                mapOf("image_embeddings" to embedding, "point_coords" to coords.copyOf(batch * coords.size / count),
                      "point_labels" to labels.copyOf(batch * labels.size / count)).buffers(),
                mapOf("low_res_masks" to lowRes, "iou_predictions" to iou).buffers())
            return DecoderOutput(lowRes.copyOf(count * 3 * plane), iou.copyOf(count * 3), lowResSide)
        }
    }

    override fun close() {
        encoder.close()
        decoder.close()
        batchDecoder.close()
        delegates.forEach { (it as? Closeable)?.close() }
    }
}
