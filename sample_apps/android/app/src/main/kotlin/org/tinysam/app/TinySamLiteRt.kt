package org.tinysam.app

import org.tensorflow.lite.Delegate
import org.tensorflow.lite.Interpreter
import org.tensorflow.lite.gpu.GpuDelegate
import org.tensorflow.lite.nnapi.NnApiDelegate
import org.tinysam.core.BatchDecoder
import org.tinysam.core.DecoderOutput
import org.tinysam.core.DecoderPrompts
import org.tinysam.core.EncoderInput
import org.tinysam.core.PAD_LABEL
import org.tinysam.core.PromptException
import org.tinysam.core.pointFeatures
import java.io.Closeable
import java.nio.ByteBuffer
import java.nio.ByteOrder

/** Where LiteRT runs the networks. NPU goes through NNAPI, which hands supported ops to the vendor's NPU driver. */
enum class Accelerator { CPU, GPU, NPU }

/**
 * One signature of an interpreter with float arrays in and out: each tensor is fed and read as the
 * manifest lists it, float32 as is, int8 or int16 (w8a8, w8a16) quantized with its scale and zero point.
 */
private class SignatureRunner(private val interpreter: Interpreter, val signature: Signature) {
    fun run(inputs: Map<String, FloatArray>): Map<String, FloatArray> {
        val missing = signature.inputs.keys - inputs.keys
        if (missing.isNotEmpty()) throw ArtifactException("signature '${signature.key}' needs ${missing.joinToString()}")
        val feed = inputs.mapValues { (name, values) -> pack(signature.input(name), values) }
        val fetch = signature.outputs.mapValues { (_, spec) -> buffer(spec) }
        interpreter.runSignature(feed, fetch, signature.key)
        return fetch.mapValues { (name, buffer) -> unpack(signature.output(name), buffer) }
    }

    private fun buffer(spec: TensorSpec): ByteBuffer = ByteBuffer.allocateDirect(spec.bytes).order(ByteOrder.nativeOrder())

    private fun pack(spec: TensorSpec, values: FloatArray): ByteBuffer {
        if (values.size != spec.elements) {
            throw ArtifactException("'${spec.name}' of '${signature.key}' holds ${spec.shape.joinToString("x")} values, given ${values.size}")
        }
        val buffer = buffer(spec)
        val q = spec.quantization
        when {
            q == null -> buffer.asFloatBuffer().put(values)
            spec.dtype == "int16" -> values.forEach { buffer.putShort(q.quantize(it, -32768, 32767).toShort()) }
            else -> values.forEach { buffer.put(q.quantize(it, -128, 127).toByte()) }
        }
        buffer.rewind()
        return buffer
    }

    private fun unpack(spec: TensorSpec, buffer: ByteBuffer): FloatArray {
        buffer.rewind()
        val q = spec.quantization ?: return FloatArray(spec.elements).also { buffer.asFloatBuffer().get(it) }
        if (spec.dtype == "int16") return FloatArray(spec.elements) { q.dequantize(buffer.getShort(2 * it).toInt()) }
        return FloatArray(spec.elements) { q.dequantize(buffer.get(it).toInt()) }
    }
}

/**
 * The artifacts of `convert --target tflite` behind the runner contract of the Python pipeline:
 * encoder.tflite ('encode': NHWC RGB pixels 0-255, mean-padded, normalisation inside the model) and
 * decoder.tflite, one interpreter with 'decode_tokens_T' for each prompt-token count T of the manifest's
 * prompt_tokens (one prompt of exactly T tokens: nothing is padded) and 'decode_batch' (everything mode).
 * Shapes come from the manifest's signature specs.
 */
class TinySamLiteRt(bundle: ArtifactBundle, accelerator: Accelerator) : Closeable {
    private val delegates = ArrayList<Delegate>()
    private val encoderInterpreter = interpreter(bundle, "encoder", accelerator)
    private val decoderInterpreter = interpreter(bundle, "decoder", accelerator)
    private val encoder = SignatureRunner(encoderInterpreter, bundle.artifacts.getValue("encoder").signature("encode"))
    /** One runner per token count T, on the 'decode_tokens_T' signature (all share the decoder's weights). */
    private val decoders: Map<Int, SignatureRunner> = bundle.tokenCounts.associateWith {
        SignatureRunner(decoderInterpreter, bundle.artifacts.getValue("decoder").signature(ArtifactBundle.tokenSignature(it)))
    }
    private val batchDecoder = SignatureRunner(decoderInterpreter, bundle.artifacts.getValue("decoder").signature("decode_batch"))
    private val lowResSide = batchDecoder.signature.output("low_res_masks").shape[3]
    private val imgSize = bundle.imgSize
    /** w8a8 / w8a16: the decoder takes the points' Fourier features, computed here from the coordinates. */
    private val pointFeatureMatrix = bundle.pointFeatureMatrix
    private val pointsInput = if (pointFeatureMatrix == null) "point_coords" else "point_features"

    /** The most prompt tokens (points, then 2 box corners or 1 padding point) of one prompt: the manifest's prompt_tokens.max. */
    val maxTokens: Int = bundle.maxTokens
    /** Prompts per 'decode_batch' call and points per prompt (the grid point plus one padding point). */
    val everythingBatch: Int = batchDecoder.signature.input(pointsInput).shape[0]
    val everythingPoints: Int = batchDecoder.signature.input(pointsInput).shape[1]

    private fun interpreter(bundle: ArtifactBundle, role: String, accelerator: Accelerator): Interpreter {
        val options = Interpreter.Options()
        when (accelerator) {
            Accelerator.CPU -> options.setNumThreads(4)  // XNNPACK is LiteRT's default CPU path
            Accelerator.GPU -> options.addDelegate(GpuDelegate().also { delegates.add(it) })
            Accelerator.NPU -> options.addDelegate(NnApiDelegate().also { delegates.add(it) })
        }
        return Interpreter(bundle.map(role), options)
    }

    /** [org.tinysam.core.preprocessPixels] output, (1, S, S, 3) pixels -> (1, 256, S/16, S/16) embedding. */
    fun encode(input: EncoderInput): FloatArray = encoder.run(mapOf("image" to input.tensor)).getValue("image_embeddings")

    private fun run(signature: SignatureRunner, embedding: FloatArray, coords: FloatArray, labels: FloatArray,
                    prompts: Int): DecoderOutput {
        val points = if (pointFeatureMatrix == null) coords else pointFeatures(coords, pointFeatureMatrix, imgSize)
        val out = signature.run(mapOf(
            "image_embeddings" to embedding, pointsInput to points, "point_labels" to labels,
            "mask_input" to FloatArray(prompts * lowResSide * lowResSide), "has_mask_input" to FloatArray(prompts)))
        return DecoderOutput(out.getValue("low_res_masks"), out.getValue("iou_predictions"), lowResSide)
    }

    /**
     * One prompt of exactly T tokens ([org.tinysam.core.encodePrompts] with [maxTokens]) -> 3 low-res masks and
     * their predicted IoU, through the 'decode_tokens_T' signature.
     */
    fun decode(embedding: FloatArray, prompts: DecoderPrompts): DecoderOutput {
        val decoder = decoders[prompts.tokens] ?: throw PromptException(
            "${prompts.tokens} prompt tokens (points, then 2 box corners or 1 padding point) exceed the decoder's $maxTokens")
        return run(decoder, embedding, prompts.coords, prompts.labels, 1)
    }

    /** Everything mode's decoder: fixed batch of single-point prompts; a short last batch is padded and trimmed. */
    fun batchDecoder(embedding: FloatArray): BatchDecoder = object : BatchDecoder {
        override fun decode(coords: FloatArray, labels: FloatArray, count: Int): DecoderOutput {
            val batch = everythingBatch
            val padded = FloatArray(batch * everythingPoints) { if (it < labels.size) labels[it] else PAD_LABEL }
            val out = run(batchDecoder, embedding, coords.copyOf(2 * batch * everythingPoints), padded, batch)
            val plane = lowResSide * lowResSide
            return DecoderOutput(out.lowResLogits.copyOf(count * 3 * plane), out.iou.copyOf(count * 3), lowResSide)
        }
    }

    override fun close() {
        encoderInterpreter.close()
        decoderInterpreter.close()
        delegates.forEach { (it as? Closeable)?.close() }
    }
}
