package org.tinysam.core

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.fail
import org.junit.Test
import org.junit.runner.RunWith
import org.junit.runners.Parameterized

/** Every golden case of `tinysam-mobile golden`, one JUnit test each, against the Kotlin glue. */
@RunWith(Parameterized::class)
class GlueGoldenTest(private val kind: String, private val file: String) {
    companion object {
        private const val COORD_TOLERANCE = 1e-4f

        @JvmStatic
        @Parameterized.Parameters(name = "{0} {1}")
        fun cases(): List<Array<String>> = listOf("preprocess", "predict", "prompt_error", "everything", "image_error",
                                                 "image_read")
            .flatMap { kind -> Golden.cases(kind).map { arrayOf(kind, it) } }
            .also { check(it.isNotEmpty()) { "no golden cases in ${Golden.dir}" } }
    }

    private val t = Golden.read(file)

    private fun int(name: String) = t.getValue(name).ints()[0]
    private fun size(name: String) = t.getValue(name).ints().let { Size(it[0], it[1]) }

    /** The user's prompts as the reference got them: a tensor absent from the file stands for None. */
    private fun prompts(): Prompts = Prompts(t["points"]?.floats(), t["labels"]?.floats(), t["box"]?.floats())

    @Test
    fun matchesPython() {
        when (kind) {
            "preprocess" -> preprocess()
            "predict" -> predict()
            "prompt_error" -> promptError()
            "everything" -> everything()
            "image_error" -> imageError()
            "image_read" -> imageRead()
            else -> fail("unknown kind $kind")
        }
    }

    private fun preprocess() {
        val imageTensor = t.getValue("image")
        val image = RgbImage(imageTensor.shape[1], imageTensor.shape[0], imageTensor.bytes())
        val target = int("img_size")
        assertEquals("resized_shape", size("resized_shape"), resizedShape(image.height, image.width, target))
        val resized = resizeLongestSide(image, target)
        val expected = t.getValue("resized").bytes()
        val differing = expected.indices.count { expected[it] != resized.pixels[it] }
        assertEquals("resized pixels differing from Pillow", 0, differing)
        val input = preprocess(image, target)
        assertEquals("input_size", size("input_size"), input.inputSize)
        // Float32 arithmetic in the same order as numpy: bit-identical.
        assertArrayEquals("encoder input", t.getValue("encoder_input").floats(), input.tensor, 0.0f)
        val pixels = preprocessPixels(image, target)
        assertEquals("input_size of the pixel input", size("input_size"), pixels.inputSize)
        assertArrayEquals("NHWC mean-padded pixels", t.getValue("encoder_pixels").floats(), pixels.tensor, 0.0f)
    }

    private fun predict() {
        val originalSize = size("original_size")
        val target = int("img_size")
        val decoder = encodePrompts(prompts(), originalSize, target, int("max_tokens"))
        // Exactly the prompt's tokens, (1, T, 2) and (1, T): nothing padded up to max_tokens.
        assertEquals("tokens", t.getValue("decoder_labels").shape[1], decoder.tokens)
        assertArrayEquals("decoder coords", t.getValue("decoder_coords").floats(), decoder.coords, COORD_TOLERANCE)
        assertArrayEquals("decoder labels", t.getValue("decoder_labels").floats(), decoder.labels, 0.0f)
        val features = pointFeatures(t.getValue("decoder_coords").floats(), t.getValue("gaussian_matrix").floats(), target)
        assertArrayEquals("point features", t.getValue("point_features").floats(), features, 1e-5f)

        val lowRes = t.getValue("low_res_logits")
        val output = DecoderOutput(lowRes.floats(), t.getValue("iou_predictions").floats(), lowRes.shape[3])
        val inputSize = resizedShape(originalSize.height, originalSize.width, target)
        assertEquals("input_size", size("input_size"), inputSize)
        val masks = t.getValue("masks").bytes()
        val plane = originalSize.height * originalSize.width
        for (m in 0 until output.maskCount) {
            val mask = output.mask(m, inputSize, originalSize, target)
            val differing = (0 until plane).count { mask[it] != (masks[m * plane + it].toInt() == 1) }
            assertEquals("mask $m pixels differing from Python", 0, differing)
        }
        val best = bestMaskIndex(output.iou)
        assertEquals("best mask", int("best_index"), best)
        val logits = output.upscaled(best, inputSize, originalSize, target)
        val expected = t.getValue("best_logits").floats()
        val worst = expected.indices.map { Math.abs(expected[it] - logits[it]) }.max() ?: 0.0f
        assertEquals("largest logit difference", 0.0f, worst, 1e-5f)
    }

    private fun promptError() {
        val prompts = prompts()
        val maxTokens = int("max_tokens")
        try {
            encodePrompts(prompts, size("original_size"), int("img_size"), maxTokens)
        } catch (e: PromptException) {
            // Refused for its token count (the prompt itself is valid): the reference's wording.
            val valid = try { checkPrompts(prompts, size("original_size")); true } catch (invalid: PromptException) { false }
            if (valid) {
                val tokens = tokenCount((prompts.points?.size ?: 0) / 2, prompts.box != null)
                assertEquals("refusal of $tokens tokens",
                             "$tokens prompt tokens (points, then 2 box corners or 1 padding point) exceed the decoder's $maxTokens",
                             e.message)
            }
            return
        }
        fail("prompts accepted that the Python pipeline refuses")
    }

    private fun imageError() {
        val size = size("original_size")
        val image = RgbImage(size.width, size.height, ByteArray(size.width * size.height * 3))
        for (preprocessing in listOf<(RgbImage, Int) -> EncoderInput>(::preprocess, ::preprocessPixels)) {
            try {
                preprocessing(image, int("img_size"))
            } catch (e: ImageException) {
                assertEquals(ImageException.tooElongated(size.width, size.height, int("img_size")).message, e.message)
                continue
            }
            fail("image size accepted that the Python pipeline refuses")
        }
    }

    private fun imageRead() {
        val stored = t.getValue("stored_rgba")
        val upright = uprightRgb(RgbaImage(stored.shape[1], stored.shape[0], stored.bytes()), int("orientation"))
        val expected = t.getValue("upright_rgb")
        assertEquals("upright size", expected.shape[0] to expected.shape[1], upright.height to upright.width)
        val values = expected.bytes()
        assertEquals("values differing from Pillow", 0, values.indices.count { values[it] != upright.pixels[it] })
    }

    /** Replays the recorded decoder answers, checking that each call asks for the recorded prompts. */
    private inner class ReplayDecoder : BatchDecoder {
        private val coords = t.getValue("decoder_coords")
        private val allCoords = coords.floats()
        private val allLabels = t.getValue("decoder_labels").floats()
        private val lowRes = t.getValue("low_res_logits")
        private val allLowRes = lowRes.floats()
        private val allIou = t.getValue("iou_predictions").floats()
        private val callSizes = t.getValue("call_sizes").ints()
        private var call = 0
        private var prompt = 0
        val calls: Int get() = call

        override fun decode(coords: FloatArray, labels: FloatArray, count: Int): DecoderOutput {
            assertEquals("prompts in decoder call $call", callSizes[call], count)
            val perPrompt = this.coords.shape[1] * 2
            val expected = allCoords.copyOfRange(prompt * perPrompt, (prompt + count) * perPrompt)
            assertArrayEquals("coords of decoder call $call", expected, coords, COORD_TOLERANCE)
            assertArrayEquals("labels of decoder call $call",
                              allLabels.copyOfRange(prompt * perPrompt / 2, (prompt + count) * perPrompt / 2), labels, 0.0f)
            val plane = 3 * lowRes.shape[2] * lowRes.shape[3]
            val output = DecoderOutput(allLowRes.copyOfRange(prompt * plane, (prompt + count) * plane),
                                       allIou.copyOfRange(prompt * 3, (prompt + count) * 3), lowRes.shape[3])
            call++
            prompt += count
            return output
        }
    }

    private fun everything() {
        val originalSize = size("original_size")
        val thresholds = t.getValue("thresholds").floats()
        val config = EverythingConfig(int("points_per_side"), int("points_per_batch"), thresholds[0], thresholds[1],
                                      thresholds[2], thresholds[3], thresholds[4])
        val decoder = ReplayDecoder()
        val generator = HierarchicalEverything(config, decoder, t.getValue("decoder_coords").shape[1], int("img_size"))
        val records = generator.generate(originalSize)
        assertArrayEquals("prompts per round", t.getValue("prompts_per_round").ints(), generator.promptsPerRound.toIntArray())
        assertEquals("decoder calls", t.getValue("call_sizes").size, decoder.calls)
        val areas = t.getValue("areas").ints()
        assertEquals("mask count after NMS", areas.size, records.size)
        val boxes = t.getValue("boxes_xywh").ints()
        val ious = t.getValue("predicted_iou").floats()
        val stability = t.getValue("stability").floats()
        val points = t.getValue("point_coords").floats()
        val masks = t.getValue("masks").bytes()
        val plane = originalSize.height * originalSize.width
        for ((k, record) in records.withIndex()) {
            assertEquals("area $k", areas[k], record.area)
            assertArrayEquals("box $k", boxes.copyOfRange(4 * k, 4 * k + 4), record.boxXywh)
            assertEquals("predicted IoU $k", ious[k], record.predictedIou, 0.0f)
            assertEquals("stability $k", stability[k], record.stability, 0.0f)
            assertEquals("point x $k", points[2 * k].toDouble(), record.point.x, 1e-4)
            assertEquals("point y $k", points[2 * k + 1].toDouble(), record.point.y, 1e-4)
            val differing = (0 until plane).count { record.mask[it] != (masks[k * plane + it].toInt() == 1) }
            assertEquals("mask $k pixels differing from Python", 0, differing)
        }
    }
}
